"""Conversations the scenarios reuse: a question answered by text, a booking with its confirmation."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

from tests.reliability.customers import QUESTION_MARKER, Sent
from tests.reliability.figures import answers
from tests.reliability.model_policy import BOOKED
from tests.reliability.waits import wait_for
from tests.reliability.world import World

QUESTIONS = (
    "Hola, ¿abrís el sábado por la tarde?",
    "¿Cuánto cuesta un tinte?",
    "¿Hacéis mechas balayage?",
    "¿Dónde está la peluquería?",
)


def ask(world: World, number: int, turn: int = 0) -> Sent:
    """Customer `number` asks something the model answers with text (echoing the message's reference)."""
    return world.customers.say(number, QUESTIONS[(number + turn) % len(QUESTIONS)])


def request_booking(world: World, number: int, at: str) -> Sent:
    """Customer `number` asks for an appointment at `at` (HH:MM); the answer is the confirmation question."""
    return world.customers.say(number, f"Hola, quiero pedir cita para un corte a las {at}", marker=QUESTION_MARKER)


def confirm(world: World, number: int) -> Sent:
    """Customer `number` answers the question with a bare yes; the answer is the booking's outcome."""
    return world.customers.say(number, "Sí", tagged=False, marker=BOOKED)


def book(world: World, number: int, at: str, *, within: float = 60) -> tuple[Sent, Sent]:
    """Request, wait for the question, confirm: the customer's two messages."""
    asked = request_booking(world, number, at)
    wait_for(lambda: bool(answers(world.twilio, asked)), within, f"the confirmation question to customer {number}")
    return asked, confirm(world, number)


@contextmanager
def keep_writing(world: World, numbers: Sequence[int], every: float) -> Iterator[list[Future[Sent]]]:
    """Customers `numbers` take turns writing, one message every `every` seconds, until the block ends; each post
    runs on its own (a hanging webhook does not hold up the next customer). On exit, waits for posts in flight."""
    stop = threading.Event()
    futures: list[Future[Sent]] = []
    with ThreadPoolExecutor(max_workers=8) as pool:

        def pace() -> None:
            for turn in itertools.count():
                number = numbers[turn % len(numbers)]
                futures.append(pool.submit(ask, world, number, turn // len(numbers)))
                if stop.wait(every):
                    return

        pacer = threading.Thread(target=pace, name="customers")
        pacer.start()
        try:
            yield futures
        finally:
            stop.set()
            pacer.join()
            wait(futures)
