"""ipywidgets browsers: step through samples and see the 2D overlay and the 3D hands side by side.

The plotly figure is a ``go.FigureWidget`` (updated in place, keeping the user's rotation) when ``anywidget`` is
installed, which plotly >= 6 needs for FigureWidget; otherwise a ``go.Figure`` redrawn into an ``Output`` widget.
All logic lives in plain methods (:meth:`SampleBrowser.update`, :meth:`SampleBrowser.render`), so it can be tested
without a browser or a kernel.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import cv2
import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from internet.skeleton import INTERHAND, Skeleton
from internet.vis.overlay import HANDS, check_hands, check_image, draw_sources_2d
from internet.vis.plot3d import hands_figure


def _figure_widget() -> Optional[go.FigureWidget]:
    """A FigureWidget if this plotly can make one (plotly >= 6 needs anywidget), else None."""
    try:
        return go.FigureWidget()
    except ImportError:
        return None


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))  # imencode expects BGR
    if not ok:  # pragma: no cover - OpenCV fails only on unsupported arrays, which check_image rules out
        raise RuntimeError("PNG encoding of the overlay failed")
    return buf.tobytes()


class SampleBrowser:
    """Browse samples: image with the 2D skeleton on the left, 3D hands on the right.

    get_sample(i) returns a dict with ``img`` (H, W, 3) uint8 RGB and any of ``joint_img`` (J, 2) GT pixels,
    ``pred_img`` (J, 2), ``joint_cam`` (J, 3) GT mm, ``pred_cam`` (J, 3), ``joint_valid`` (J,), ``title`` (str).
    Widgets: a slider with prev/next buttons, right/left hand and pred/GT check boxes, camera/root space, and, given
    ``hand_type`` (n,) and/or ``error`` (n,) mm of the samples, a hand-type filter and an order (worst first, best
    first, as listed) that decide which samples the slider walks through (:func:`browse_order`). ``widget`` is the
    container to display; ``figure`` the plotly figure, ``image_png`` the current overlay. Displayed, it carries a
    static PNG of the current sample for viewers without a kernel.
    """

    def __init__(
        self,
        get_sample: Callable[[int], Dict[str, Any]],
        n: int,
        skeleton: Skeleton = INTERHAND,
        start: Optional[int] = None,
        space: str = "camera",
        hands: Sequence[str] = HANDS,
        show_pred: bool = True,
        show_gt: bool = True,
        image_width: int = 380,
        figure_height: int = 520,
        hand_type: Optional[Sequence[str]] = None,
        error: Optional[Sequence[float]] = None,
        hand_filter: str = "all",
        order: str = "index",
        export_dir: Optional[Union[str, Path]] = None,
    ) -> None:
        """get_sample: index -> sample dict; n: number of samples; start: first index shown; space: 'camera' or
        'root'; hands, show_pred, show_gt: initial toggles; image_width (px) and figure_height (px): sizes;
        hand_type, error: per-sample hand type and error for the filter and the order; hand_filter ('all',
        'interacting', 'right', 'left') and order ('index', 'worst', 'best'): their initial values; export_dir: an
        "export" button writes the sample on screen there (:meth:`export`)."""
        if not callable(get_sample):
            raise TypeError("get_sample must be a callable index -> dict")
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if space not in ("camera", "root"):
            raise ValueError(f"space must be 'camera' or 'root', got {space!r}")
        hands = check_hands(hands)
        self._get_sample = get_sample
        self.n = int(n)
        self._build_order(hand_type, error, hand_filter, order)
        self.order: List[int] = browse_order(self.n, self.hand_type, self.error, hand_filter, order)
        self.skeleton = skeleton
        self.figure_height = int(figure_height)
        self._index = -1
        self._sample: Dict[str, Any] = {}
        self.image_png = b""

        self.slider = widgets.IntSlider(
            value=0,
            min=0,
            max=max(len(self.order) - 1, 0),
            description="sample",
            continuous_update=False,
            layout=widgets.Layout(width="420px"),
        )
        self._build_toggles(hands, show_pred, show_gt, space)
        self.export_dir = None if export_dir is None else Path(export_dir)
        self.export_button = widgets.Button(description="export", tooltip="HTML + PNG of the sample on screen")
        self.export_button.on_click(lambda _: self.export())
        self.title_html = widgets.HTML()
        self.image = widgets.Image(format="png", width=image_width)

        self._figure_widget = _figure_widget()
        self._figure = self._figure_widget if self._figure_widget is not None else go.Figure()
        self._plot_out = None if self._figure_widget is not None else widgets.Output()

        self.slider.observe(self._on_slider, names="value")
        self.prev_button.on_click(lambda _: self.step(-1))
        self.next_button.on_click(lambda _: self.step(+1))
        for box in (*self.hand_boxes.values(), self.pred_box, self.gt_box):
            box.observe(lambda _: self.render(), names="value")
        self.space_buttons.observe(lambda _: self.render(), names="value")
        self.filter_dropdown.observe(lambda _: self.reorder(), names="value")
        self.order_dropdown.observe(lambda _: self.reorder(), names="value")

        plot = self._figure_widget if self._figure_widget is not None else self._plot_out
        self._widget = widgets.VBox(
            [
                widgets.HBox([self.prev_button, self.slider, self.next_button, *self._order_widgets()]),
                widgets.HBox(
                    [*self.hand_boxes.values(), self.pred_box, self.gt_box, self.space_buttons, *self._export_widgets()]
                ),
                self.title_html,
                widgets.HBox([self.image, plot]),
            ]
        )
        self.update(self.order[0] if start is None and self.order else start or 0)

    def _export_widgets(self) -> list:
        return [self.export_button] if self.export_dir is not None else []

    def export(self, out_dir: Optional[Union[str, Path]] = None, png_method: str = "auto") -> Dict[str, Any]:
        """Write the sample on screen to ``out_dir`` (default ``export_dir``): ``sample_{i}_3d.html`` and ``.png`` (the
        3D figure as shown: hands, space, toggles), ``sample_{i}_2d.png`` (the overlay) and ``sample_{i}.png`` (both
        side by side, as the static view). Returns the paths; the title line says where they went."""
        from internet.utils.atomic import atomic_write_bytes
        from internet.vis.export import save_figure

        folder = Path(out_dir or self.export_dir or ".")
        stem = f"sample_{self._index}"
        saved = save_figure(self._figure, folder, f"{stem}_3d", png_method=png_method)
        written = {"html": saved["html"], "png_3d": saved["png"]}
        written["png_2d"] = atomic_write_bytes(folder / f"{stem}_2d.png", self.image_png)
        written["png"] = atomic_write_bytes(folder / f"{stem}.png", self.static_png())
        self.title_html.value += f" <i>exported to {html.escape(str(folder))}</i>"
        return written

    def _order_widgets(self) -> list:
        out = [self.filter_dropdown] if self.hand_type is not None else []
        return out + ([self.order_dropdown] if self.error is not None else [])

    def _build_order(self, hand_type, error, hand_filter: str, order: str) -> None:
        """The per-sample hand types and errors (checked) and the filter and order drop-downs."""
        self.hand_type = None if hand_type is None else np.asarray(hand_type).astype(str)
        self.error = None if error is None else np.asarray(error, dtype=np.float64)
        for name, arr in (("hand_type", self.hand_type), ("error", self.error)):
            if arr is not None and arr.shape != (self.n,):
                raise ValueError(f"{name} must have one entry per sample ({self.n}), got shape {arr.shape}")
        self.filter_dropdown = widgets.Dropdown(
            options=FILTERS, value=hand_filter, description="hands", layout=widgets.Layout(width="200px")
        )
        self.order_dropdown = widgets.Dropdown(
            options=[("as listed", "index"), ("worst first", "worst"), ("best first", "best")],
            value=order,
            description="order",
            layout=widgets.Layout(width="200px"),
        )

    def _build_toggles(self, hands: Sequence[str], show_pred: bool, show_gt: bool, space: str) -> None:
        """The prev/next buttons, the hand and source check boxes and the space buttons."""
        self.prev_button = widgets.Button(description="◀ prev", layout=widgets.Layout(width="80px"))
        self.next_button = widgets.Button(description="next ▶", layout=widgets.Layout(width="80px"))
        self.hand_boxes = {
            h: widgets.Checkbox(
                value=h in hands, description=f"{h} hand", indent=False, layout=widgets.Layout(width="100px")
            )
            for h in HANDS
        }
        self.pred_box = widgets.Checkbox(
            value=show_pred, description="prediction", indent=False, layout=widgets.Layout(width="100px")
        )
        self.gt_box = widgets.Checkbox(
            value=show_gt, description="ground truth", indent=False, layout=widgets.Layout(width="110px")
        )
        self.space_buttons = widgets.ToggleButtons(
            options=["camera", "root"], value=space, description="space", style={"button_width": "70px"}
        )

    # ------------------------------------------------------------------------------------------------ state
    @property
    def widget(self) -> widgets.VBox:
        """The top-level container to display."""
        return self._widget

    @property
    def figure(self) -> go.Figure:
        """The plotly figure (a FigureWidget when available), updated in place."""
        return self._figure

    @property
    def index(self) -> int:
        return self._index

    @property
    def sample(self) -> Dict[str, Any]:
        return self._sample

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The widget, plus a static PNG of the current sample and a one-line text (not ``VBox(...)``) for viewers
        without a kernel."""
        bundle = dict(self._widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.static_png()).decode("ascii")
        bundle["text/plain"] = f"<sample browser: {len(self.order)} of {self.n} samples, showing #{self._index}>"
        return bundle

    def static_png(self) -> bytes:
        """The current view as one PNG: the 2D overlay beside the 3D hands (matplotlib rendering)."""
        from internet.vis.static3d import static_fallback

        pic3d = static_fallback(self._figure, as_png=True, width_in=5.5, height_in=4.5)
        over = cv2.imdecode(np.frombuffer(self.image_png, np.uint8), cv2.IMREAD_COLOR)
        right = cv2.imdecode(np.frombuffer(pic3d, np.uint8), cv2.IMREAD_COLOR)
        h = right.shape[0]
        over = cv2.resize(over, (max(1, int(over.shape[1] * h / over.shape[0])), h), interpolation=cv2.INTER_AREA)
        return _png(np.concatenate([over, right], axis=1)[:, :, ::-1])

    # ------------------------------------------------------------------------------------------------ actions
    def _on_slider(self, change) -> None:
        if self.order and self.order[change["new"]] != self._index:
            self.update(self.order[change["new"]])

    def step(self, delta: int) -> None:
        """Move ``delta`` places along the current order (filter and sort), clamped to its ends."""
        if not self.order:
            return
        pos = self.order.index(self._index) if self._index in self.order else -1
        pos = min(max(pos + int(delta), 0), len(self.order) - 1)
        if self.order[pos] != self._index:
            self.update(self.order[pos])

    def reorder(self) -> None:
        """Apply the filter and order drop-downs: the slider walks the new order, starting at its first sample."""
        self.order = browse_order(
            self.n, self.hand_type, self.error, self.filter_dropdown.value, self.order_dropdown.value
        )
        self.slider.max = max(len(self.order) - 1, 0)
        if not self.order:
            self.title_html.value = f"<b>no {html.escape(self.filter_dropdown.value)} samples</b>"
            return
        self.update(self.order[0])

    def update(self, index: int) -> None:
        """Load sample ``index`` through get_sample and redraw."""
        if int(index) != index or not 0 <= index < self.n:
            raise IndexError(f"sample index {index!r} is outside [0, {self.n - 1}]")
        index = int(index)
        sample = self._get_sample(index)
        if not isinstance(sample, dict):
            raise TypeError(f"get_sample({index}) returned {type(sample).__name__}, expected a dict")
        if "img" not in sample:
            raise KeyError(f"get_sample({index}) returned no 'img' (keys: {sorted(sample)})")
        check_image(sample["img"], f"get_sample({index})['img']")
        self._sample = sample
        self._index = index
        pos = self.order.index(index) if index in self.order else None
        if pos is not None and self.slider.value != pos:
            self.slider.value = pos  # its observer sees order[pos] == self._index and does nothing
        self.render()

    def render(self) -> None:
        """Redraw the overlay image and the 3D figure for the current sample and toggles."""
        hands = tuple(h for h in HANDS if self.hand_boxes[h].value)
        show_pred, show_gt, s = self.pred_box.value, self.gt_box.value, self._sample
        valid = s.get("joint_valid")
        title = str(s.get("title", f"sample {self._index}"))
        where = f"{self.order.index(self._index) + 1} / {len(self.order)}" if self._index in self.order else "-"
        self.title_html.value = f"<b>{html.escape(title)}</b> ({where})"

        gt_2d = s.get("joint_img") if show_gt else None
        pred_2d = s.get("pred_img") if show_pred else None
        img = draw_sources_2d(np.asarray(s["img"]), gt_2d, pred_2d, valid, self.skeleton, hands)
        self.image_png = _png(img)
        self.image.value = self.image_png

        pred = s.get("pred_cam") if show_pred else None
        gt = s.get("joint_cam") if show_gt else None
        if pred is None and gt is None:
            new = go.Figure(layout=dict(height=self.figure_height, title="nothing to show"))
        else:
            new = hands_figure(
                pred, gt, valid, self.skeleton, space=self.space_buttons.value, show=hands, height=self.figure_height
            )
        fig = self._figure
        with fig.batch_update():
            fig.data = ()
            fig.layout = new.layout
        fig.add_traces(list(new.data))
        self._show_plot()

    def _show_plot(self) -> None:
        """Without FigureWidget: redraw the static-structure figure into the Output widget (in a kernel only)."""
        redraw_in_output(self._plot_out, self._figure)


FILTERS = ("all", "interacting", "right", "left")


def browse_order(
    n: int,
    hand_type: Optional[Sequence[str]] = None,
    error: Optional[Sequence[float]] = None,
    hand_filter: str = "all",
    order: str = "index",
) -> List[int]:
    """The sample indices a browser walks through: those of ``hand_type`` == ``hand_filter`` (all for 'all'), as
    listed ('index'), by error descending ('worst': NaN last) or ascending ('best')."""
    if hand_filter not in FILTERS:
        raise ValueError(f"hand_filter must be one of {FILTERS}, got {hand_filter!r}")
    if order not in ("index", "worst", "best"):
        raise ValueError(f"order must be 'index', 'worst' or 'best', got {order!r}")
    keep = np.arange(int(n))
    if hand_filter != "all":
        if hand_type is None:
            raise ValueError("a hand-type filter needs the samples' hand_type")
        keep = keep[np.asarray(hand_type).astype(str) == hand_filter]
    if order != "index":
        if error is None:
            raise ValueError(f"order {order!r} needs the samples' error")
        e = np.asarray(error, dtype=np.float64)[keep]
        key = np.where(np.isfinite(e), -e if order == "worst" else e, np.inf)
        keep = keep[np.argsort(key, kind="stable")]
    return [int(i) for i in keep]


def redraw_in_output(output, *figures) -> None:
    """Replace what an ``ipywidgets.Output`` shows with ``figures`` (the fallback where a FigureWidget cannot update
    in place); nothing outside a kernel or without an Output."""
    if output is None:
        return
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return
    if get_ipython() is None:
        return
    from IPython.display import clear_output, display

    with output:
        clear_output(wait=True)
        for fig in figures:
            display(fig)
