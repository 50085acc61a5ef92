"""``python -m emulator``: serve local Azure over HTTPS on 127.0.0.1.

The first line printed is JSON: {"base_url": ..., "ca_path": ..., "port": ..., "pid": ...}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--state", help="JSON file: loaded at start if it exists, saved at exit")
    parser.add_argument("--speed", type=float, default=1.0, help="emulated seconds per real second")
    parser.add_argument("--seed", type=int, help="random seed for fault injection")
    parser.add_argument("--workdir", help="where the CA certificate is written (default: a temp dir)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from .core.app import Emulator
    from .core.server import EmulatorServer

    emulator = Emulator(speed=args.speed, seed=args.seed)
    if args.state and os.path.exists(args.state):
        emulator.load_state(args.state)
    server = EmulatorServer(emulator, port=args.port, workdir=args.workdir)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(json.dumps(server.info()), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if args.state:
            emulator.save_state(args.state)
        server.httpd.server_close()
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
