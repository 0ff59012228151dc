"""One measured step for lemon24/reader: add every URL (exist_ok) and update every feed once.

Run by bench/run.py in a fresh process per step, so that its CPU time and
peak RSS are reader's alone. Prints one JSON object with what happened.

    python bench/reader_update.py DB URLS_FILE WORKERS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(database: str, urls_file: str, workers: int) -> dict[str, int | float | None]:
    from reader import make_reader

    started = time.monotonic()
    reader = make_reader(database)
    urls = Path(urls_file).read_text().split()
    for url in urls:
        reader.add_feed(url, exist_ok=True)
    added = time.monotonic()
    updated = not_modified = failed = new = modified = 0
    # scheduled=False: every feed now, like `aggregator poll --all`.
    for _url, value in reader.update_feeds_iter(scheduled=False, workers=workers):
        if value is None:
            not_modified += 1
        elif isinstance(value, Exception):
            failed += 1
            print(f"reader: {_url}: {value!r}", file=sys.stderr)
        else:
            updated += 1
            new += value.new
            modified += value.modified
    finished = time.monotonic()
    counts = reader.get_entry_counts()
    reader.close()
    return {
        "feeds": len(urls),
        "updated": updated,
        "not_modified": not_modified,
        "failed": failed,
        "new_entries": new,
        "modified_entries": modified,
        "total_entries": counts.total,
        "add_seconds": round(added - started, 3),
        "update_seconds": round(finished - added, 3),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
