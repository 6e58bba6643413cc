"""Synthetic InterHand2.6M: an articulated two-hand model, a camera rig, a fast OpenCV renderer and writers for the
official v1.0 layout and JSON formats (``python -m internet.synth --out DIR``).

Pieces meant for reuse (e.g. RHD/STB-format writers): :func:`sample_hand_shape`, :func:`sample_poses`,
:func:`hand_joints` (hand_model), :func:`sample_single_frames` / :func:`sample_two_hand_frames` (scene),
:func:`render_hands`, :func:`render_background`, :func:`finish_image` (render), and :func:`check_interhand` to
verify any data set in the InterHand2.6M layout against the release's annotation rules.
"""

from internet.synth.check import CheckReport, check_interhand
from internet.synth.hand_model import HandShape, hand_joints, sample_hand_shape, sample_poses
from internet.synth.interhand import generate
from internet.synth.render import HandStyle, finish_image, render_background, render_hands, sample_style
from internet.synth.scene import FrameBatch, sample_single_frames, sample_two_hand_frames

__all__ = [
    "generate",
    "check_interhand",
    "CheckReport",
    "HandShape",
    "hand_joints",
    "sample_hand_shape",
    "sample_poses",
    "HandStyle",
    "render_hands",
    "render_background",
    "finish_image",
    "sample_style",
    "FrameBatch",
    "sample_single_frames",
    "sample_two_hand_frames",
]
