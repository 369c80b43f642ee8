import pytest

from edgecn.errors import USER_ERROR_EXIT, EdgecnError
from edgecn.registry import Registry


def test_unknown_name_suggests_close_match_and_lists_command():
    reg = Registry("model", "edgecn models")
    reg.register("condensenet-86", aliases=("cn86",))(object())
    assert reg.canonical("cn86") == "condensenet-86"
    with pytest.raises(EdgecnError) as e:
        reg.get("condensenet-68")
    assert "did you mean 'condensenet-86'" in e.value.message
    assert "edgecn models" in e.value.message


def test_duplicate_registration_is_a_bug():
    reg = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(ValueError):
        reg.register("a")(2)


def test_error_message_has_fix_and_exit_code():
    err = EdgecnError("file 'x' is missing.", "pass an existing file")
    assert err.message == "file 'x' is missing. Fix: pass an existing file"
    assert err.exit_code == USER_ERROR_EXIT == 2
