"""`metagen serve`: keep models loaded for the other commands (docs/serve.md); --stop and --status."""

from __future__ import annotations

from typing import Annotated

import typer

from metagen.errors import ServerStateError


def serve(
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running server: it finishes the request it is "
                                       "running, requests still waiting run in their own processes. Exit 3 when "
                                       "none runs.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Print one line: the running server's pid, socket and "
                                         "loaded models. Exit 3 when none runs.")] = False,
):
    """Keep models loaded and answer the other commands over a Unix socket in METAGEN_HOME.

    Runs in the foreground (start it with `metagen serve &`) until `metagen serve --stop`,
    Ctrl-C or SIGTERM. story, describe-scene, dialogue, batch, generate, replay, prompt and eval
    then use it and give the same files, output and exit codes, without the start-up.
    """
    from metagen import protocol
    from metagen.home import cache_dir

    if stop and status:  # one question at a time: it stopped the server, then printed the stop's answer as a status
        raise typer.BadParameter("give --stop or --status, not both", param_hint="'--stop' / '--status'")
    home = cache_dir()
    if stop or status:
        try:
            answer = protocol.ask(home, "stop" if stop else "status")
        except protocol.UnsafeSocket as error:  # a file, a folder, another user's socket: say what to do
            raise ServerStateError(f"not talking to that server: {error}",
                                   hint="if no server of yours runs there, remove it; or point METAGEN_HOME "
                                   "elsewhere") from None
        if answer is None:
            if status:
                typer.echo(protocol.describe_status(None))
                raise typer.Exit(ServerStateError.exit_code)
            raise ServerStateError(f"no metagen server is running in {home}", hint="`metagen serve &` starts one")
        if status:
            typer.echo(protocol.describe_status(answer))
        else:
            typer.echo(f"stopped the metagen server (pid {answer.get('stopping')})", err=True)
        return
    from metagen.server import Server

    Server(home).serve()


__all__ = ["serve"]
