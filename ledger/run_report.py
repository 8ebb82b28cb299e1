"""A finished sync told for an operator: its statistics per kind and a summary of its verification.

Plain functions of the run record; the Prefect artifacts (`flows.artifacts`) are built from them.
"""

from __future__ import annotations

from typing import Any

from ledger.kinds import kinds
from ledger.sync_run import SyncRun, TypeStats

# The statistics' names for people: `synced` counts entries posted, `skipped` documents left as they were.
COLUMNS = {"scanned": "Documents read", "synced": "Entries posted", "reversed": "Reversal entries",
           "skipped": "Unchanged documents", "errors": "Rejected documents", "late": "Booked late"}


def statistics_rows(run: SyncRun) -> list[dict[str, Any]]:
    """One row per kind of document the run read, and the total."""
    stats = run.sync_stats
    selected = [kind for kind in kinds() if kind.step in stats.by_type]
    return [_row(kind.label, stats.of(kind.step)) for kind in selected] + [_row("Total", stats.total)]


def _row(label: str, stats: TypeStats) -> dict[str, Any]:
    counts = stats.model_dump()
    return {"Kind": label, **{title: counts[name] for name, title in COLUMNS.items()}}


def summary_markdown(run: SyncRun, run_page_url: str) -> str:
    """The run's outcome, verification and rejections, with a link to its page in the web UI."""
    total = run.sync_stats.total
    took = f"{run.duration_ms / 1000:.1f} s" if run.duration_ms is not None else "—"
    lines = [f"# Sync {run.sync_id} of {run.vendor_id}: {run.state.value}", "",
             f"Run {run.run_number}, attempt {run.attempts}, took {took}: {total.scanned:,} documents read, "
             f"{total.synced:,} entries posted, {total.reversed:,} reversal entries, "
             f"{total.skipped:,} documents unchanged.", ""]
    if run.error:
        lines += [f"**Error:** {run.error}", ""]
    lines += ["## Verification", "", *_verification_lines(run.verification), "",
              "## Rejected documents", ""]
    if run.errors_count:
        lines.append(f"**{run.errors_count:,}** document(s) rejected: listed on [the run's page]({run_page_url}) "
                     f"and by `ledger-sync errors {run.sync_id}`.")
    else:
        lines.append("None.")
    lines += ["", f"[Open this sync in Ledger Sync]({run_page_url})"]
    return "\n".join(lines) + "\n"


def _verification_lines(verification: dict[str, Any] | None) -> list[str]:
    if not verification:
        return ["Not verified: the sync ended before its last step."]
    balanced = "balanced" if verification.get("balanced") else "**not balanced**"
    lines = [f"Trial balance {balanced}: debits {verification.get('totalDebit')}, credits "
             f"{verification.get('totalCredit')}.", "",
             "| Open balances | Ledger | Documents | Result |", "|---|---|---|---|"]
    for name in ("receivables", "payables"):
        check = verification.get(name) or {}
        agree = "agree" if check.get("ok") else "**differ**"
        lines.append(f"| {name.capitalize()} | {check.get('ledger')} | {check.get('documents')} | {agree} |")
    if verification.get("unbalancedEntries"):
        lines.append(f"\n**{verification['unbalancedEntries']}** unbalanced entries.")
    return lines
