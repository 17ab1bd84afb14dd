"""Fetch a CMS release from the CMS download pages: the only network code in claimscrub.

CMS publishes each quarter's files as .zip links on a few stable pages; the link names carry the quarter
(`medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip`,
`medicare-ncci-2026-q3-practitioner-services-mue-table.zip`, `rvu26a.zip`). We read the page, keep the
links of the asked release and save them; `claimscrub reference load` then reads the archives as they are.
"""

import re
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

CMS = "https://www.cms.gov"
PAGES = {
    "ptp": CMS + "/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
                 "medicare-ncci-procedure-procedure-ptp-edits",
    "mue": CMS + "/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
                 "medicare-ncci-medically-unlikely-edits",
    "rvu": CMS + "/medicare/payment/fee-schedules/physician/pfs-relative-value-files",
}
USER_AGENT = "claimscrub (reference download)"
TIMEOUT_SECONDS = 120


class DownloadError(RuntimeError):
    """The release could not be found or fetched (message says what and where)."""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def links_of(html: str, base: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return list(dict.fromkeys(urljoin(base, href) for href in parser.hrefs))


def parse_release(release: str) -> tuple[str, str]:
    """'PTP 2026Q3' -> ('ptp', pattern); 'MUE 2026Q3' -> ('mue', pattern); 'RVU26A' -> ('rvu', pattern)."""
    text = release.strip().lower()
    if match := re.fullmatch(r"(ptp|mue)\s*(20\d{2})\s*-?\s*q([1-4])", text):
        kind, year, quarter = match[1], match[2], match[3]
        if kind == "ptp":
            return kind, rf"/medicare-ncci-{year}-?q{quarter}-practitioner-ptp-edits-[^/]*\.zip$"
        return kind, rf"/medicare-ncci-{year}-?q{quarter}-[^/]*-mue-table[^/]*\.zip$"
    if match := re.fullmatch(r"rvu\s*(\d{2}[a-d])", text):
        return "rvu", rf"/rvu{match[1]}[^/]*\.zip$"
    raise DownloadError(f"--release {release!r}: give one of 'PTP 2026Q3', 'MUE 2026Q3' or 'RVU26A'")


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.read()
    except OSError as exc:
        raise DownloadError(f"{url}: {exc}") from exc


def find_release_links(release: str) -> list[str]:
    kind, pattern = parse_release(release)
    page = PAGES[kind]
    on_page = links_of(_get(page).decode("utf-8", "replace"), page)
    links = [u for u in on_page if re.search(pattern, u, re.IGNORECASE)]
    if not links and kind == "rvu":
        # The RVU archives sit one page down (".../pfs-relative-value-files/rvu26a").
        for sub in [u for u in on_page if re.search(pattern.replace(r"[^/]*\.zip$", "$"), u, re.IGNORECASE)][:1]:
            links = [u for u in links_of(_get(sub).decode("utf-8", "replace"), sub) if u.lower().endswith(".zip")]
    if not links:
        raise DownloadError(f"{page}: no download for {release} on the CMS page (not published yet?)")
    return links


def download_release(release: str, folder: Path) -> list[Path]:
    """Save the release's archives into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for url in find_release_links(release):
        target = folder / url.rsplit("/", 1)[-1]
        target.write_bytes(_get(url))
        saved.append(target)
    return saved
