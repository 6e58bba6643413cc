"""One hand-box widget for the notebooks (05: your image, 07: your video): x, y, w, h sliders with a live preview of
the box on the image. ``box`` is always the box on screen (the last valid one), the box that is predicted on and
saved."""

from __future__ import annotations

import base64
from typing import Callable, List, Optional, Sequence

import cv2
import ipywidgets as widgets
import numpy as np

from internet.vis.overlay import check_image, draw_bbox


class BoxSlider:
    """x, y, w, h sliders (pixels) over ``img`` with a live preview.

    check(box) -> box (np.ndarray) validates a box and raises ValueError with a message (e.g.
    ``internet.infer.predictor.check_box`` bound to the image size); an invalid box is reported under the sliders
    and ``box`` keeps the last valid one. ``observe(fn)`` calls ``fn(box)`` after each valid change. Displayed, it
    carries a static PNG of the preview for viewers without a kernel.
    """

    def __init__(
        self,
        img: np.ndarray,
        box: Sequence[float],
        check: Optional[Callable[[Sequence[float]], np.ndarray]] = None,
        width_px: int = 420,
        label: str = "box",
    ) -> None:
        self.img = check_image(np.asarray(img))
        self._check = check or (lambda b: np.asarray(b, dtype=np.float64))
        self._box = np.asarray(self._check(box), dtype=np.float64)
        self.label = label
        self._callbacks: List[Callable[[np.ndarray], None]] = []
        h, w = self.img.shape[:2]
        limits = {"x": (-w // 2, w - 1), "y": (-h // 2, h - 1), "w": (4, 2 * w), "h": (4, 2 * h)}
        self.sliders = {
            k: widgets.IntSlider(
                value=int(round(v)), min=limits[k][0], max=limits[k][1], description=k, continuous_update=True
            )
            for k, v in zip("xywh", self._box)
        }
        self.message = widgets.Label(value=f"{label} {self._box.tolist()}")
        self.picture = widgets.Image(value=self.preview_png(), format="png", width=width_px)
        for s in self.sliders.values():
            s.observe(lambda _: self._changed(), names="value")
        rows = [
            widgets.HBox([self.sliders["x"], self.sliders["y"]]),
            widgets.HBox([self.sliders["w"], self.sliders["h"]]),
        ]
        self.widget = widgets.VBox([*rows, self.message, self.picture])

    @property
    def box(self) -> np.ndarray:
        """The box on screen [x, y, w, h] (the last valid one)."""
        return self._box.copy()

    def set_box(self, box: Sequence[float]) -> None:
        """Move the sliders to ``box`` (validated)."""
        for k, v in zip("xywh", np.asarray(self._check(box), dtype=np.float64)):
            self.sliders[k].value = int(round(v))

    def observe(self, fn: Callable[[np.ndarray], None]) -> None:
        self._callbacks.append(fn)

    def _changed(self) -> None:
        try:
            new = np.asarray(self._check([self.sliders[k].value for k in "xywh"]), dtype=np.float64)
        except ValueError as e:
            self.message.value = f"{self.label} not changed: {e}"
            return
        self._box = new
        self.message.value = f"{self.label} {new.tolist()}"
        self.picture.value = self.preview_png()
        for fn in self._callbacks:
            fn(self.box)

    def preview_png(self) -> bytes:
        """PNG of the image with the box on screen."""
        drawn = draw_bbox(self.img, self._box, label=self.label)
        return cv2.imencode(".png", drawn[:, :, ::-1])[1].tobytes()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.preview_png()).decode("ascii")
        bundle["text/plain"] = f"<{self.label} {self._box.tolist()}>"
        return bundle
