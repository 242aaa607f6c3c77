"""The ``planner`` command line: parse, call the public API, render with rich.

The CLI holds no modelling logic. Every command calls what ``import planner``
exposes (``get_model``, ``get_system``, ``estimate_train``, ...) or
``planner.validate``, then renders the result as rich tables or, with
``--json``, as exactly one JSON object on stdout.

A bad input (unknown name, malformed spec file, impossible plan, bad flag)
prints ONE line on stderr, ``error: ...``, and exits with status 2; never a
traceback. An unexpected internal failure prints one line and exits 1 (set
``PLANNER_DEBUG=1`` to see the traceback).

Tables fit the terminal (80 columns when piped) without wrapping a cell; every
command takes ``--json``, every table-printing one ``--csv``; choices are listed
in ``--help`` and complete in the shell (``--install-completion``); long work
shows progress on stderr (never under ``--json`` or off a terminal); commands
that draw take ``--plot FILE`` and ``--report FILE.html``. All of it lives in
the :mod:`.render` package.

One module per command group, all importing their shared helpers from
:mod:`.render` and never from each other; this module only assembles them:

* :mod:`.specs`    - ``specs list | show | validate``
* :mod:`.train`    - ``estimate train``, ``train``
* :mod:`.plans`    - ``check``, ``export`` (a saved plan document through the gate, then to a launcher)
* :mod:`.serve`    - ``estimate serve``, ``serve``, ``simulate``
* :mod:`.experts`  - ``experts``
* :mod:`.mix`      - ``mix`` (the GPU-type mix; ``--verify`` simulates it)
* :mod:`.sweep`    - ``sweep`` (a grid of training jobs, a local pool or Ray, one row each)
* :mod:`.validate` - ``validate training | serving``
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

import planner

from . import experts, mix, plans, serve, specs, sweep, train, validate
from .render import EXIT_INTERNAL, cli_errors, polish_help, usage_error

app = typer.Typer(
    name="planner",
    help="Analytical capacity planner for LLM training and serving.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
)
estimate_app = typer.Typer(help="Predict time, memory and cost of one explicit plan.", no_args_is_help=True)
validate_app = typer.Typer(help="Predicted vs published measurements on the reference suites.", no_args_is_help=True)
app.add_typer(specs.specs_app, name="specs")
app.add_typer(estimate_app, name="estimate")
app.add_typer(validate_app, name="validate")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"planner {planner.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Analytical capacity planner for LLM training and serving.

    Specs (hardware YAML, Hugging Face config.json) -> cost model -> plan.
    """




estimate_app.command("train")(cli_errors(train.estimate_train))
estimate_app.command("serve")(cli_errors(serve.estimate_serve))
validate_app.command("training")(cli_errors(validate.validate_training))
validate_app.command("serving")(cli_errors(validate.validate_serving))
app.command("train")(cli_errors(train.train))
app.command("check")(cli_errors(plans.check_cmd))
app.command("export")(cli_errors(plans.export_plan))
app.command("serve")(cli_errors(serve.serve))
app.command("simulate")(cli_errors(serve.simulate_cmd))
app.command("experts")(cli_errors(experts.experts))
app.command("mix")(cli_errors(mix.mix))
app.command("sweep")(cli_errors(sweep.sweep))


def main(argv: list[str] | None = None) -> None:
    """``planner`` console script: run the app, usage errors as one line, exit 2.

    Python warnings (a numpy ``RuntimeWarning`` on a degenerate input) never reach stderr: the causes known are
    fixed where they arise, and stderr holds only the one ``error:`` line a bad input gets."""
    command = polish_help(typer.main.get_command(app))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rv = command.main(args=argv, prog_name="planner", standalone_mode=False)
    except BrokenPipeError:  # `planner ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_INTERNAL)
    except Exception as exc:
        # Click's usage errors (typer vendors click in recent releases: duck-type them).
        if hasattr(exc, "exit_code") and hasattr(exc, "format_message"):
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":
                # rich help is printed when the error is built; plain help is its message
                text = exc.format_message()
                if text and text.strip() and text.strip() != "None":
                    typer.echo(text)
                sys.exit(0)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"error: {usage_error(exc)}{hint}", err=True)
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            typer.echo("error: aborted", err=True)
            sys.exit(EXIT_INTERNAL)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
