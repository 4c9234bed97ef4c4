"""The DAG layout and drawing as pure functions: layers by longest path, crossings cut, cycles broken
(never a hang), and boxes that fit 80 columns for a short chain and grow at 200."""

from __future__ import annotations

import pytest

from tui.widgets.dag import BOX_MAX, DagBox, draw
from tui.widgets.dag_layout import crossings, layout


def real(layers: list[list[int]]) -> list[list[int]]:
    return [[k for k in layer if k > 0] for layer in layers]


def test_chain_is_one_node_per_layer() -> None:
    lay = layout([1, 2, 3], [(1, 2), (2, 3)])
    assert lay.layers == [[1], [2], [3]]
    assert lay.edges == [(1, 2), (2, 3)]
    assert lay.dropped == []


def test_lone_node_and_empty() -> None:
    assert layout([7], []).layers == [[7]]
    assert layout([], []).layers == []


def test_fan_in_puts_sources_in_the_layer_before_the_target() -> None:
    lay = layout([1, 2, 3, 4], [(1, 3), (2, 3), (3, 4)])
    assert lay.layers == [[1, 2], [3], [4]]


def test_fan_out() -> None:
    lay = layout([1, 2, 3, 4], [(1, 2), (1, 3), (1, 4)])
    assert lay.layers[0] == [1]
    assert sorted(lay.layers[1]) == [2, 3, 4]
    assert crossings(lay.layers, lay.edges) == 0


def test_longest_path_and_long_edges_pass_through_points() -> None:
    # 1 -> 2 -> 3 -> 4 and 5 -> 4, 1 -> 4: the short edge 1 -> 4 spans two layers
    lay = layout([1, 2, 3, 4], [(1, 2), (2, 3), (3, 4), (1, 4)])
    rank = lay.rank()
    assert [rank[k] for k in (1, 2, 3, 4)] == [0, 1, 2, 3]
    points = [k for layer in lay.layers for k in layer if k < 0]
    assert len(points) == 2
    assert all(abs(rank[u] - rank[v]) == 1 for u, v in lay.edges)


def test_a_source_sits_next_to_its_successor() -> None:
    lay = layout([1, 2, 3, 9], [(1, 2), (2, 3), (9, 3)])
    assert lay.rank()[9] == 1
    assert all(k > 0 for layer in lay.layers for k in layer)


def test_crossings_are_cut() -> None:
    # given in an order that crosses: 1 -> 4, 2 -> 3
    lay = layout([1, 2, 3, 4], [(1, 4), (2, 3)])
    assert crossings(lay.layers, lay.edges) == 0
    assert crossings([[1, 2], [3, 4]], [(1, 4), (2, 3)]) == 1


@pytest.mark.timeout(5)
def test_a_cycle_is_broken_not_looped() -> None:
    lay = layout([1, 2, 3], [(1, 2), (2, 3), (3, 1)])
    assert real(lay.layers) == [[1], [2], [3]]
    assert lay.dropped == [(3, 1)]
    whole = layout([1, 2], [(1, 2), (2, 1), (1, 1)])
    assert sum(len(layer) for layer in whole.layers) == 2


def test_unknown_nodes_and_duplicates_are_ignored() -> None:
    lay = layout([1, 2], [(1, 2), (1, 2), (2, 99), (98, 1)])
    assert lay.layers == [[1], [2]]
    assert lay.edges == [(1, 2)]


def boxes(*ids: int) -> list[DagBox]:
    return [DagBox(i, f"node-{i}", "TRAIN", "succeeded" if i % 2 else "failed") for i in ids]


def test_a_chain_fits_80_columns_with_arrows_and_states() -> None:
    lay = layout([1, 2, 3], [(1, 2), (2, 3)])
    drawing = draw(boxes(1, 2, 3), lay, width=78, selected=2)
    lines = drawing.text.plain.splitlines()
    assert len(lines) == 5
    assert max(len(line) for line in lines) <= 78
    assert lines[2].count("▶") == 2
    assert "┏" in lines[0]  # the selected box is drawn heavy
    assert {"node-1", "node-2", "node-3"} <= set(drawing.text.plain.split())
    styles = {str(span.style) for span in drawing.text.spans}
    assert "green" in styles and "bold red" in styles
    regions = drawing.boxes
    assert regions[1].x < regions[2].x < regions[3].x
    assert regions[1].y == regions[2].y == regions[3].y


def test_wide_terminals_get_wider_boxes_and_long_dags_scroll() -> None:
    lay = layout([1, 2, 3], [(1, 2), (2, 3)])
    small = draw(boxes(1, 2, 3), lay, width=78).boxes[1].width
    wide = draw(boxes(1, 2, 3), lay, width=196).boxes[1].width
    assert small < wide <= BOX_MAX
    ids = list(range(1, 9))
    long = draw(boxes(*ids), layout(ids, list(zip(ids, ids[1:], strict=False))), width=78)
    assert max(len(line) for line in long.text.plain.splitlines()) > 78  # wider than the view: it scrolls


def test_fan_in_draws_a_join() -> None:
    lay = layout([1, 2, 3], [(1, 3), (2, 3)])
    text = draw(boxes(1, 2, 3), lay, width=78).text.plain
    assert "╮" in text and "╯" in text  # one edge turns down, the other up ...
    assert text.count("▶") == 1  # ... and they join into one arrow into node 3
