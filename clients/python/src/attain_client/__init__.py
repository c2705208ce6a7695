"""Typed async client of the Attain gRPC API.

from decimal import Decimal
from attain_client import AttainClient

async with AttainClient("127.0.0.1:50051", key) as attain:
    await attain.record_sale("T-1", member="M-001", sku="SKU-1", amount=Decimal("4000.00"))
"""

from attain_client.client import AttainClient, line, pages, refund, sale, service_config
from attain_client.convert import (
    decimal,
    json_default,
    plain,
    timestamp,
    to_date,
    to_datetime,
    to_decimal,
)
from attain_client.errors import AttainError, FieldViolation
from attain_client.sftp import password_credential, private_key_credential

__all__ = [
    "AttainClient",
    "AttainError",
    "FieldViolation",
    "decimal",
    "json_default",
    "line",
    "pages",
    "password_credential",
    "plain",
    "private_key_credential",
    "refund",
    "sale",
    "service_config",
    "timestamp",
    "to_date",
    "to_datetime",
    "to_decimal",
]
