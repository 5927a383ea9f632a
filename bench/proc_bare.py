"""The bare baseline as a process of its own (`python -m bench.proc_bare`), served by uvicorn the way a developer
runs it, beside Asistente's `asistente serve` and `asistente worker` processes: the bare durable webhook with its
worker (`bench.bare.bare_webhook_app`), `--concurrency` turns at once, on the database at `--db-url`.

The Twilio auth token comes in `BARE_TWILIO_AUTH_TOKEN` (not on the command line, where `ps` shows it). Nothing of
Asistente is imported here: its addresses and names come as arguments.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from bench.bare import BareConfig, bare_webhook_app
from bench.doubles import MODEL_API_KEY, TWILIO_ACCOUNT_SID

TOKEN_ENV = "BARE_TWILIO_AUTH_TOKEN"


def main() -> None:
    """Serve the bare webhook and its worker until terminated."""
    parser = argparse.ArgumentParser(description="The bare baseline's webhook and worker in one process.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--doubles-url", required=True, help="the benchmark doubles (model and Twilio)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--public-url", required=True, help="what Twilio signs the webhook's address with")
    parser.add_argument("--business-number", required=True)
    parser.add_argument("--model", required=True, help="the model name the bare loop asks the double for")
    args = parser.parse_args()
    config = BareConfig(
        db_url=args.db_url,
        model_url=args.doubles_url + "/v1",
        twilio_url=args.doubles_url,
        account_sid=TWILIO_ACCOUNT_SID,
        auth_token=os.environ[TOKEN_ENV],
        public_url=args.public_url,
        business_number=args.business_number,
        model_api_key=MODEL_API_KEY,
        model=args.model,
        worker=True,
        concurrency=args.concurrency,
    )
    # uvicorn's defaults otherwise (access log on), as `uvicorn app:app` would run it.
    uvicorn.run(bare_webhook_app(config), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
