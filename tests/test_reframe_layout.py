"""Where a reframe puts its source (`domain/reframe.py`), decided once for
every engine: the smallest canvas of the new aspect ratio that holds it,
placed as asked (else centred), never a larger picture than it was given."""

from __future__ import annotations

import pytest

from reelgate.domain.reframe import Layout, Placement, PlacementError, layout


def test_a_landscape_clip_goes_in_the_middle_of_a_portrait_canvas() -> None:
    assert layout(1920, 1080, (9, 16), Placement()) == Layout(1080, 1920, 0, 656, 1080, 608)


def test_the_grid_position_places_it_and_stays_inside_the_canvas() -> None:
    assert layout(400, 400, (2, 1), Placement(grid_x=0)).x == 0
    assert layout(400, 400, (2, 1), Placement(grid_x=5000)).x == 400


def test_a_box_sets_its_size_and_place() -> None:
    got = layout(400, 300, (1, 1), Placement(x_start=0, x_end=200, y_start=100, y_end=250))
    assert got == Layout(200, 200, 0, 50, 200, 150)


def test_one_resized_side_keeps_the_proportions() -> None:
    got = layout(400, 300, (1, 1), Placement(resized_width=200))
    assert (got.content_width, got.content_height) == (200, 150)


def test_a_4k_source_makes_at_most_1080p_with_even_sides() -> None:
    got = layout(3840, 2160, (1, 1), Placement())
    assert (got.width, got.height, got.content_width) == (1080, 1080, 1080)


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        (Placement(x_start=10, x_end=10), "x_end must be greater"),
        (Placement(y_start=-1), "between 0 and"),
        (Placement(resized_height=0), "at least 1"),
    ],
)
def test_placements_no_source_could_use_are_refused(placement: Placement, message: str) -> None:
    with pytest.raises(PlacementError, match=message):
        layout(100, 100, (1, 1), placement)
