"""What the guardrail detectors cost per 4 KB of prompt text, in process (no server).

    .venv/bin/python benchmarks/guardrails.py [--runs 3] [--iterations 200] [--only "pii formats"] [--score]

Four synthetic 4 KB texts are built from templates written here (not from any corpus): a
typical prompt (a design review: prose and code, one name and one e-mail), and three PII-dense
worst cases — English chat (a support conversation with a name, an e-mail, a phone number, a
card, an address in every few lines), the same kind of Vietnamese chat with diacritics (CCCD,
MST, STK, a plate), and a mixed text (half of each, a pasted log line, a key). Each detector
runs ``--iterations`` times per run, ``--runs`` runs; the table gives CPU µs per 4 KB (process
CPU time over the loop, divided by iterations) as the median run and the spread (min–max).
The fold cache (``pii.fold``) and the phone validations' memo are cleared before every call,
so each detector pays for folding and validating the text as if it ran alone; the last row runs
PII + content + injection on the same text, sharing one fold, as the guardrail stage does.

Rows: ``pii formats`` is the PII detector restricted to the validated types (cards, phones,
e-mails, IBAN, IPs, SSN, keys, CCCD/CMND, passport, MST, bank accounts, plates) — the issue's
"format checks" goal is ≤ 1 ms per 4 KB; ``pii all`` adds PERSON and ADDRESS.

``--score`` also runs the development corpus's scorer (``../shared/data/pii`` next to the repo,
read from its path, never copied) per language and prints its table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmgw_kernel.guardrails.content import content_detector  # noqa: E402
from llmgw_kernel.guardrails.injection import injection_detector  # noqa: E402
from llmgw_kernel.guardrails.pii import PII_TYPES, pii_detector  # noqa: E402
from llmgw_kernel.guardrails.pii.fold import fold  # noqa: E402
from llmgw_kernel.guardrails.pii.numbers import _phone  # noqa: E402

SIZE = 4096

EN_TURNS = (
    "Hi, I'm writing about the invoice we received last week for the annual plan.",
    "My colleague Rebecca Thornton forwarded it to me; you can reach her at r.thornton@northwind-example.com.",
    "We were charged twice on the card ending 4242, the full number is 4539 1488 0343 6467 if you need it.",
    "Please call me back on +1 415 555 0132 between 9 and 5 Pacific time, or leave a message.",
    "Our billing address is 2150 Shattuck Avenue, Suite 300, Berkeley, CA 94704.",
    "Could you also explain why the price went from $1,299.00 to $1,499.00 for version 2.4 of the product?",
    "The order number on the receipt is 100238847 and the ticket was opened on 2024-03-18.",
    "Summarise the refund policy in three bullet points and draft a polite reply to the customer.",
    "Make sure the tone is friendly, and mention that the next release ships in April.",
)
VI_TURNS = (
    "Chào bạn, mình là Nguyễn Thị Thu Hà, đang cần hỗ trợ về hợp đồng thuê nhà.",
    "Số CCCD của mình là 079192004512, số điện thoại 0912 345 678, email thuha.nguyen@example.vn.",
    "Công ty bên thuê có mã số thuế 0100109106,"
    " địa chỉ 25 Lý Thường Kiệt, phường Phan Chu Trinh, quận Hoàn Kiếm, Hà Nội.",
    "Tiền cọc chuyển vào STK 1903 5567 8890 12 Techcombank, chủ tài khoản Trần Văn Bình.",
    "Giá thuê 12.500.000đ mỗi tháng, hợp đồng ký ngày 15/03/2024, xe máy biển số 29-B1 234.56 gửi ở tầng hầm.",
    "Bạn giúp mình soạn lại điều khoản thanh toán cho rõ ràng hơn,"
    " và kiểm tra xem có thiếu điều gì theo Nghị định mới không.",
    "Nếu cần thì gọi tổng đài 1900 6868 để hỏi thêm, mình cảm ơn nhiều.",
)
# a typical prompt: prose and code with one name and one e-mail in 4 KB
TYPICAL_TURNS = (
    "You are a careful reviewer. Read the design note below and list the three biggest risks, with a fix for each.",
    "The service keeps a write-ahead journal and flushes it every 200 ms or 512 entries, whichever comes first.",
    "On restart it replays the journal into the columnar store, then rebuilds the in-memory indexes from it.",
    "def flush(self) -> None:\n    batch = self.pending[:512]\n    self.store.append(batch)\n"
    "    del self.pending[:512]",
    "Readers open a snapshot and never block writers; compaction runs at night and merges small segments.",
    "Questions from the team: is the 200 ms window too long for the audit trail, and what happens on a full disk?",
    "Feedback so far came from Laura Chen (laura.chen@example.org); she thinks the retry policy is too aggressive.",
    "Keep the answer under 300 words and use plain English; the audience is the on-call rotation, not the authors.",
)
MIXED_EXTRA = (
    "2024-03-18T10:22:41Z INFO request_id=9f2c1ab0 client=10.24.7.199 latency_ms=182 status=200",
    "export OPENAI_API_KEY=sk-proj-Zx81Qp0LmN4vR7tY2wB9cK5dHs6Jf3Ug",
)


def build(turns: tuple[str, ...], size: int = SIZE) -> str:
    """Turns repeated in order until the text reaches ``size`` characters, cut at ``size``."""
    out: list[str] = []
    n = 0
    while n < size:
        t = turns[len(out) % len(turns)]
        out.append(t)
        n += len(t) + 1
    return "\n".join(out)[:size]


def texts() -> dict[str, str]:
    mixed = build(tuple(x for pair in zip(EN_TURNS, VI_TURNS, strict=False) for x in pair) + MIXED_EXTRA)
    return {"typical": build(TYPICAL_TURNS), "en": build(EN_TURNS), "vi": build(VI_TURNS), "mixed": mixed}


def cpu_us(call: Callable[[], object], iterations: int) -> float:
    """CPU µs per call over ``iterations`` calls (process time)."""
    start = time.process_time()
    for _ in range(iterations):
        call()
    return (time.process_time() - start) / iterations * 1e6


def cold() -> None:
    """Forget what earlier calls memoised (the folded texts, the phone validations), so each call
    pays for its text as if it were the first: a value that recurs *within* the text (the texts
    repeat their turns to fill 4 KB) is still validated once."""
    fold.cache_clear()
    _phone.cache_clear()


def measure(runs: int, iterations: int, only: str | None = None) -> list[tuple[str, str, list[float]]]:
    formats = [t for t in PII_TYPES if t not in ("PERSON", "ADDRESS")]
    pii_fmt, pii_all = pii_detector(entities=formats), pii_detector()
    content, injection = content_detector(), injection_detector()

    def alone(det: object, text: str) -> Callable[[], object]:
        def call() -> object:
            cold()
            return det.find(text)  # type: ignore[attr-defined]

        return call

    def stage(text: str) -> Callable[[], object]:
        def call() -> object:
            cold()
            return pii_all.find(text), content.find(text), injection.find(text)

        return call

    rows = []
    for lang, text in texts().items():
        for name, call in (
            ("pii formats", alone(pii_fmt, text)),
            ("pii all", alone(pii_all, text)),
            ("content (7 categories)", alone(content, text)),
            ("injection", alone(injection, text)),
            ("pii + content + injection", stage(text)),
        ):
            if only is not None and name != only:
                continue
            call()  # warm: compiled patterns, phonenumbers metadata
            rows.append((name, lang, [cpu_us(call, iterations) for _ in range(runs)]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--only", help='one row (e.g. "pii formats"): quick enough to interleave two checkouts')
    ap.add_argument("--score", action="store_true", help="also run the dev corpus scorer per language")
    a = ap.parse_args()
    sizes = {k: len(v) for k, v in texts().items()}
    print(f"texts: {sizes} characters; {a.runs} runs x {a.iterations} calls; CPU µs per 4 KB")
    print(f"{'detector':<28}{'text':<9}{'median':>9}{'min':>9}{'max':>9}")
    for name, lang, vals in measure(a.runs, a.iterations, a.only):
        print(f"{name:<28}{lang:<9}{statistics.median(vals):>9.0f}{min(vals):>9.0f}{max(vals):>9.0f}")
    if a.score:
        corpus = ROOT.parent / "shared" / "data" / "pii"
        spec = f"{Path(__file__).resolve()}:score_detector"
        for lang in ("en", "vi"):
            subprocess.run([sys.executable, str(corpus / "score.py"), spec, "--lang", lang], check=True)


_SCORED = pii_detector()


def score_detector(text: str, lang: str) -> list[tuple[int, int, str]]:
    """The scorer's interface (``func(text, lang) -> spans``) over the default PII detector."""
    return [(f.start, f.end, f.type) for f in _SCORED.find(text)]


if __name__ == "__main__":
    main()
