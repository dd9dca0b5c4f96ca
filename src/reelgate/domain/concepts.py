"""The official API's camera concepts: the keys `GET /generations/concepts/list`
answers and `concepts: [{key}]` on a video create accepts, each with the camera
move it names in words (what engines that steer by prompt are told)."""

from __future__ import annotations

CONCEPTS: dict[str, str] = {
    "truck_left": "the camera trucks left, moving sideways to the left",
    "pan_right": "the camera pans right",
    "pedestal_down": "the camera lowers straight down on a pedestal",
    "low_angle": "a low-angle shot looking up at the subject",
    "pedestal_up": "the camera rises straight up on a pedestal",
    "selfie": "a handheld selfie shot, the camera held at arm's length",
    "pan_left": "the camera pans left",
    "roll_right": "the camera rolls clockwise",
    "zoom_in": "the camera zooms in",
    "over_the_shoulder": "an over-the-shoulder shot",
    "orbit_right": "the camera orbits right around the subject",
    "orbit_left": "the camera orbits left around the subject",
    "static": "a static, locked-off camera",
    "tiny_planet": "a tiny-planet view, the ground curved into a small sphere",
    "high_angle": "a high-angle shot looking down on the subject",
    "bolt_cam": "a fast bolt-cam move rushing toward the subject",
    "dolly_zoom": "a dolly zoom: the subject holds its size while the background stretches",
    "overhead": "an overhead shot looking straight down",
    "zoom_out": "the camera zooms out",
    "handheld": "a handheld camera with natural shake",
    "roll_left": "the camera rolls counter-clockwise",
    "pov": "a first-person point-of-view shot",
    "aerial_drone": "an aerial drone shot gliding forward above the scene",
    "push_in": "the camera pushes in toward the subject",
    "crane_down": "the camera cranes down",
    "truck_right": "the camera trucks right, moving sideways to the right",
    "tilt_down": "the camera tilts down",
    "elevator_doors": "elevator doors slide open to reveal the scene",
    "tilt_up": "the camera tilts up",
    "ground_level": "a ground-level shot from just above the floor",
    "pull_out": "the camera pulls out away from the subject",
    "aerial": "an aerial shot high above the scene",
    "crane_up": "the camera cranes up",
    "eye_level": "an eye-level shot",
}
"""In the order the official API lists them."""


def unknown_concepts(keys: list[str]) -> list[str]:
    return [key for key in keys if key not in CONCEPTS]


def guidance(keys: tuple[str, ...]) -> str:
    """The camera moves as a sentence to add to a prompt ("" for none)."""
    return "; ".join(CONCEPTS[key] for key in keys if key in CONCEPTS)
