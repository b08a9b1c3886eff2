"""Every option of every manage.py command of this project has help text.

Walks each command's parser and every subparser below it (``tenants create``,
``plans update``, ...): an argument, option or sub-command without help is named in
the failure. Argparse's ``-h`` and the options every Django command has are not the
project's and are not checked.
"""

import argparse
import pkgutil
from collections.abc import Iterator
from importlib import import_module

import pytest
from django.core.management import BaseCommand, load_command_class

PROJECT_APPS = ("tenants", "content")


def _project_commands() -> list[tuple[str, str]]:
    commands = []
    for app in PROJECT_APPS:
        package = import_module(f"{app}.management.commands")
        commands += [
            (app, module.name)
            for module in pkgutil.iter_modules(package.__path__)
            if not module.ispkg and not module.name.startswith("_")
        ]
    return sorted(commands)


def _django_base_options() -> set[str]:
    parser = BaseCommand().create_parser("manage.py", "base")
    return {option for action in parser._actions for option in action.option_strings}


def _arguments_without_help(
    parser: argparse.ArgumentParser, path: str, base_options: set[str]
) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings and set(action.option_strings) <= base_options:
            continue
        if isinstance(action, argparse._SubParsersAction):
            described = {choice.dest for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                if name not in described:
                    yield f"{path} {name} (sub-command)"
                yield from _arguments_without_help(
                    subparser, f"{path} {name}", base_options
                )
            continue
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            name = "/".join(action.option_strings) or action.metavar or action.dest
            yield f"{path} {name}"


def test_the_project_has_commands_to_check():
    assert {"tenants", "plans", "migrate", "seed_demo"} <= {
        name for _, name in _project_commands()
    }


@pytest.mark.parametrize(("app", "name"), _project_commands())
def test_every_option_has_help(app, name):
    parser = load_command_class(app, name).create_parser("manage.py", name)

    missing = list(_arguments_without_help(parser, name, _django_base_options()))

    assert not missing, "no help text: " + ", ".join(missing)
