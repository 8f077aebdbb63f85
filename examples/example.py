"""Small inventory report: the file the `make run` demo opens and completes in."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Item:
    name: str
    quantity: int
    unit_price: float

    @property
    def total(self) -> float:
        return self.quantity * self.unit_price


def read_items(path: Path) -> list[Item]:
    """Read items from a CSV file with the columns name, quantity and unit_price."""
    items = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            items.append(Item(row["name"], int(row["quantity"]), float(row["unit_price"])))
    return items


def write_report(items: list[Item], path: Path) -> None:
    """Write the items and the grand total as JSON."""
    report = {
        "items": [{"name": item.name, "total": item.total} for item in items],
        "grand_total": sum(item.total for item in items),
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)


def most_valuable(items: list[Item]) -> Item | None:
    """Return the item with the largest total, or None for an empty list."""
    if not items:
        return None
    return max(items, key=lambda item: item.total)


def main() -> None:
    items = read_items(Path("inventory.csv"))
    write_report(items, Path("report.json"))
    best = most_valuable(items)
    if best is not None:
        print(f"most valuable: {best.name} ({best.total:.2f})")


if __name__ == "__main__":
    main()
