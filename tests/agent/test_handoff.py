"""Handing a conversation to staff."""

from __future__ import annotations

import json
from dataclasses import replace

from agent.api import IncomingText
from agent.assistant import Assistant
from agent.graph import build_graph
from tests.agent.conftest import CUSTOMER, Harness
from tests.scripted_model import call, says, uses


class RecordingHandoff:
    """Remembers hand-offs instead of alerting anyone."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, str]] = []

    async def hand_off(self, wa_id: str, reason: str) -> None:
        self.handed.append((wa_id, reason))


async def test_customer_asking_for_a_person_is_handed_to_staff(harness: Harness) -> None:
    handoff = RecordingHandoff()
    services = replace(harness.assistant.services, handoff=handoff)
    assistant = Assistant(build_graph(harness.model, services, harness.graph.checkpointer), services)
    harness.model.extend(
        uses(call("handoff_to_staff", reason="Quiere hablar con una persona sobre una queja del último tinte.")),
        says("Te paso con el equipo del salón; te escribirán enseguida."),
    )
    await harness.say("Quiero hablar con una persona, el tinte salió fatal")
    # The default harness has no staff channel: the tool refuses and offers the salon's phone.
    refusal = json.loads(str((await harness.tool_results())[-1].content))
    assert refusal["error"] == "no_staff_channel" and refusal["business_phone"] == harness.business.phone
    assert handoff.handed == []

    harness.model.extend(
        uses(call("handoff_to_staff", reason="Queja del último tinte.")),
        says("Te paso con el equipo del salón; te escribirán enseguida."),
    )
    result = await assistant.customer_turn(CUSTOMER, [IncomingText(body="¿Me pasas con alguien, por favor?")])
    assert handoff.handed == [(CUSTOMER, "Queja del último tinte.")]
    assert result.replies == ("Te paso con el equipo del salón; te escribirán enseguida.",)
    harness.model.assert_complete()
