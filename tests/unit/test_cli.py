"""The `anchor` dispatcher: every command reaches the package that runs it, and a command whose package this
installation lacks fails saying where it comes from (the images install one package each)."""

from __future__ import annotations

import pytest

from anchor import cli


def test_help_lists_every_command_and_which_are_installed(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    listing = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"  {name}" in listing
    assert "not in this installation" not in listing, "the dev install has every package"


def test_no_command_prints_the_usage_and_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert capsys.readouterr().err.startswith("usage: anchor COMMAND")


def test_an_unknown_command_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rendr"]) == 2
    assert "unknown command 'rendr'; one of: render, news" in capsys.readouterr().err


def test_a_command_whose_package_is_missing_says_which_image_has_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ghost = cli.Command("no_such_package", "no_such_package.cli:main", False, "a command", "the ghost image")
    monkeypatch.setitem(cli.COMMANDS, "ghost", ghost)
    assert cli.main(["ghost", "--flag"]) == 2
    assert "'ghost' is not part of this installation; it comes with the ghost image" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "a command  (not in this installation)" in capsys.readouterr().out


def test_each_command_reaches_its_own_parser(capsys: pytest.CaptureFixture[str]) -> None:
    for name, prog in (("render", "anchor render"), ("controller", "anchor controller"),
                       ("standin-engine", "anchor standin-engine")):  # fmt: skip
        with pytest.raises(SystemExit) as exited:
            cli.main([name, "--help"])
        assert exited.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: {prog}")
