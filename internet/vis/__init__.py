"""Visualisation of arrays (images, 2D/3D joints, cameras): it knows nothing of files or of the model.

- ``overlay``: OpenCV 2D skeleton and boxes on RGB images, a matplotlib GT-vs-prediction figure.
- ``style``: the one look of two hands (right warm, left cool; GT solid, prediction dashed; errors on one scale).
- ``plot3d``: plotly 3D hands (camera or root-aligned space) and camera rigs; ``static3d`` their matplotlib rendering.
- ``export``: save HTML + PNG (kaleido with a browser, else matplotlib), ``show`` with a static PNG for notebooks.
- ``widgets``: ``SampleBrowser`` (ipywidgets) to step through samples.
"""

from internet.vis.export import figure_png, find_browser, save_figure, show
from internet.vis.overlay import draw_bbox, draw_skeleton_2d, overlay_figure
from internet.vis.plot3d import camera_rig_figure, hands_figure
from internet.vis.static3d import hands_figure_matplotlib, static_fallback
from internet.vis.widgets import SampleBrowser

__all__ = [
    "SampleBrowser",
    "camera_rig_figure",
    "draw_bbox",
    "draw_skeleton_2d",
    "figure_png",
    "find_browser",
    "hands_figure",
    "hands_figure_matplotlib",
    "overlay_figure",
    "save_figure",
    "show",
    "static_fallback",
]
