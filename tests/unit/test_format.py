import pytest
from hypothesis import given, strategies as st

from nsbox.cli.format import render, table_headers
from nsbox.runtime.errors import InvalidArgument

OBJ = {"ID": "abc", "State": {"Status": "running", "Pid": 7}, "Labels": {"a": "1"}, "L": ["x", "y"]}


def test_fields_and_functions():
    assert render("{{.ID}} {{.State.Status}}", OBJ) == "abc running"
    assert render("{{json .State}}", OBJ) == '{"Status": "running", "Pid": 7}'
    assert render('{{index .Labels "a"}}', OBJ) == "1"
    assert render('{{join .L ","}}', OBJ) == "x,y"
    assert render("{{upper .ID}}\\t{{.State.Pid}}", OBJ) == "ABC\t7"
    assert table_headers("{{.ID}}\t{{.Names}}") == "CONTAINER ID\tNAMES"


def test_bad_templates():
    with pytest.raises(InvalidArgument):
        render("{{.Nope}}", OBJ)
    with pytest.raises(InvalidArgument):
        render("{{frobnicate .ID}}", OBJ)


@given(st.text(max_size=40))
def test_render_total(t):
    try:
        render(t, OBJ)
    except InvalidArgument as e:
        assert "\n" not in str(e)
