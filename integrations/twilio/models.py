"""What Twilio posts to our webhooks, parsed into typed models (unknown fields are kept, never refused)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.sanitize import without_nul

__all__ = ["MAX_MEDIA", "MediaItem", "TwilioInbound", "TwilioStatusCallback", "without_nul"]

MAX_MEDIA = 10  # WhatsApp/Twilio limit per message


class MediaItem(BaseModel):
    """One attachment (`MediaUrl{N}` / `MediaContentType{N}`)."""

    url: str
    content_type: str | None = None


class TwilioInbound(BaseModel):
    """An inbound WhatsApp message (Twilio's Messaging webhook, form-encoded)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    message_sid: str = Field(alias="MessageSid", min_length=2, max_length=64)
    from_: str = Field(alias="From", min_length=3, max_length=64)
    to: str | None = Field(default=None, alias="To")
    account_sid: str | None = Field(default=None, alias="AccountSid")
    # No length limit: a message is stored whole however long (the request body limit bounds it); the agent reads
    # a bounded start of it (`agent.window.bounded_text`). Refusing it would lose it: Twilio does not resend.
    body: str = Field(default="", alias="Body")
    wa_id: str | None = Field(default=None, alias="WaId")
    profile_name: str | None = Field(default=None, alias="ProfileName")
    message_type: str | None = Field(default=None, alias="MessageType")
    num_media: int = Field(default=0, alias="NumMedia", ge=0, le=MAX_MEDIA)
    media: tuple[MediaItem, ...] = ()
    button_payload: str | None = Field(default=None, alias="ButtonPayload")
    button_text: str | None = Field(default=None, alias="ButtonText")
    replied_message_sid: str | None = Field(default=None, alias="OriginalRepliedMessageSid")
    latitude: float | None = Field(default=None, alias="Latitude")
    longitude: float | None = Field(default=None, alias="Longitude")
    address: str | None = Field(default=None, alias="Address")
    label: str | None = Field(default=None, alias="Label")

    @model_validator(mode="before")
    @classmethod
    def _collect_media(cls, data: Any) -> Any:
        # Media arrive as numbered fields; gather the ones present, however many NumMedia announces.
        if not isinstance(data, dict):
            return data
        data = without_nul(data)  # first, so that the media gathered below are clean too
        media = []
        for index in range(MAX_MEDIA):
            url = data.get(f"MediaUrl{index}")
            if url:
                media.append({"url": url, "content_type": data.get(f"MediaContentType{index}")})
        return {**data, "media": media}

    @property
    def address_of_sender(self) -> str:
        """The customer's WhatsApp address ('whatsapp:+34600123456'), the key of everything we keep about them."""
        if self.from_.startswith("whatsapp:"):
            return self.from_
        if self.wa_id and self.wa_id.isdigit():
            return f"whatsapp:+{self.wa_id}"
        return self.from_

    def text_for_agent(self) -> str:
        """What the customer said, in words the agent can read (buttons, locations and attachments included)."""
        parts = [self.body.strip()] if self.body.strip() else []
        if not parts and self.button_text:
            parts.append(self.button_text)
        if self.latitude is not None and self.longitude is not None:
            place = ", ".join(p for p in (self.label, self.address) if p)
            parts.append(f"[location {self.latitude},{self.longitude}{': ' + place if place else ''}]")
        parts.extend(f"[attachment: {item.content_type or 'file'}]" for item in self.media)
        return "\n".join(parts)


# Twilio's MessageStatus values mapped onto the outbox's statuses.
TWILIO_TO_OUTBOX_STATUS = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


class TwilioStatusCallback(BaseModel):
    """A delivery status callback for a message we sent."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    message_sid: str = Field(alias="MessageSid", min_length=2, max_length=64)
    message_status: str = Field(alias="MessageStatus", min_length=1)
    error_code: str | None = Field(default=None, alias="ErrorCode")
    error_message: str | None = Field(default=None, alias="ErrorMessage")
    to: str | None = Field(default=None, alias="To")

    @model_validator(mode="before")
    @classmethod
    def _legacy_status(cls, data: Any) -> Any:
        # Older callbacks carry only SmsStatus. NULs go too: ErrorMessage is stored in a text column.
        if not isinstance(data, dict):
            return data
        data = without_nul(data)
        if "MessageStatus" not in data and "SmsStatus" in data:
            return {**data, "MessageStatus": data["SmsStatus"]}
        return data

    @property
    def outbox_status(self) -> str | None:
        """The outbox status this callback means, None for a status we do not track."""
        return TWILIO_TO_OUTBOX_STATUS.get(self.message_status.lower())
