"""Message catalogues: the gettext ``.po`` file of ``WAREHOUSE_LANGUAGE``, read at start.

Every operator-visible sentence of the page, the refusals, the history, the timeline and the mails
is marked in its template (``{% trans %}``, ``_()``); the catalogue of the language gives its
translation, through the standard ``gettext`` module. A translator edits one ``.po`` file per
language; the service reads that file itself (a ``.po`` is turned into the ``.mo`` bytes that
``gettext.GNUTranslations`` reads, in memory, as ``msgfmt`` would), so neither a compile step nor
Babel is needed to run it, and a customer adds a language by dropping its ``.po`` file into
``WAREHOUSE_TEMPLATES_DIR/locale/<language>/LC_MESSAGES/warehouse.po`` (a ``.mo`` there is read too).
A catalogue in the customer's folder wins, entry by entry, over the built-in one of its language.
"""

from __future__ import annotations

import ast
import gettext
import io
import re
import struct
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import jinja2

from warehouse_core import reasons
from warehouse_core.errors import ConfigurationError

DOMAIN = "warehouse"
BUILT_IN_LOCALE = Path(__file__).resolve().parent.parent / "locale"
# The language of the templates' own text: it needs no catalogue (its .po only lists the msgids).
SOURCE_LANGUAGE = "en"
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
_KEYWORD = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")\s*$")


def catalogue_path(locale_dir: Path, language: str, suffix: str = ".po") -> Path:
    return locale_dir / language / "LC_MESSAGES" / (DOMAIN + suffix)


class CatalogueError(ValueError):
    pass


def parse_po(text: str, name: str = "catalogue") -> Dict[str, str]:
    """The translated entries of a ``.po`` file as the keys and values of a ``.mo`` file: a plural
    entry is ``msgid\\0msgid_plural`` -> ``msgstr[0]\\0msgstr[1]…``, a context ``ctxt\\x04msgid``.
    Untranslated and fuzzy entries are left out (the English text stands), as msgfmt does; the
    header (msgid "") is kept, since it carries the charset and the plural rule."""
    entries: Dict[str, str] = {}
    fields: Dict[str, List[str]] = {}
    current: Optional[str] = None
    fuzzy = False

    def finish() -> None:
        nonlocal fuzzy
        if "msgid" in fields:
            msgid = "".join(fields["msgid"])
            if "msgctxt" in fields:
                msgid = "".join(fields["msgctxt"]) + "\x04" + msgid
            if "msgid_plural" in fields:
                key = msgid + "\0" + "".join(fields["msgid_plural"])
                forms = sorted(k for k in fields if k.startswith("msgstr["))
                value = "\0".join("".join(fields[k]) for k in sorted(forms, key=lambda k: int(k[7:-1])))
                translated = all("".join(fields[k]) for k in forms) and bool(forms)
            else:
                key = msgid
                value = "".join(fields.get("msgstr", []))
                translated = bool(value)
            if translated and (not fuzzy or msgid == ""):
                entries[key] = value
        fields.clear()
        fuzzy = False

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        starts_entry = line.startswith("#") or line.startswith("msgctxt") or line.startswith("msgid ")
        if starts_entry and any(k.startswith("msgstr") for k in fields):
            finish()  # the entry before this comment or msgid is whole
        if line.startswith("#"):
            fuzzy = fuzzy or (line.startswith("#,") and "fuzzy" in line)
            continue
        match = _KEYWORD.match(line)
        if match:
            current = match.group(1)
            fields[current] = [_unquote(match.group(3), name, number)]
        elif line.startswith('"') and current is not None:
            fields[current].append(_unquote(line, name, number))
        else:
            raise CatalogueError("{} line {}: cannot read {!r}".format(name, number, line[:60]))
    finish()
    return entries


def _unquote(quoted: str, name: str, number: int) -> str:
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError):
        raise CatalogueError("{} line {}: not a quoted string: {}".format(name, number, quoted[:60])) from None
    if not isinstance(value, str):
        raise CatalogueError("{} line {}: not a quoted string: {}".format(name, number, quoted[:60]))
    return value


def mo_bytes(entries: Dict[str, str]) -> bytes:
    """The GNU ``.mo`` file of ``entries`` (what msgfmt writes), for ``gettext.GNUTranslations``."""
    keys = sorted(entries)
    ids = b""
    strs = b""
    offsets: List[Tuple[int, int, int, int]] = []
    for key in keys:
        k, v = key.encode("utf-8"), entries[key].encode("utf-8")
        offsets.append((len(ids), len(k), len(strs), len(v)))
        ids += k + b"\0"
        strs += v + b"\0"
    count = len(keys)
    key_start = 7 * 4 + 16 * count
    value_start = key_start + len(ids)
    table = b""
    for id_offset, id_length, _, _ in offsets:
        table += struct.pack("<2I", id_length, id_offset + key_start)
    for _, _, str_offset, str_length in offsets:
        table += struct.pack("<2I", str_length, str_offset + value_start)
    header = struct.pack("<7I", 0x950412DE, 0, count, 7 * 4, 7 * 4 + count * 8, 0, 0)
    return header + table + ids + strs


def read_catalogue(path: Path) -> gettext.GNUTranslations:
    """One catalogue file, ``.po`` (read as msgfmt would compile it) or ``.mo``."""
    if path.suffix == ".mo":
        data = path.read_bytes()
    else:
        data = mo_bytes(parse_po(path.read_text(encoding="utf-8"), str(path)))
    try:
        return gettext.GNUTranslations(io.BytesIO(data))
    except (OSError, ValueError) as error:
        raise CatalogueError("{}: {}".format(path, error)) from None


def _found(locale_dir: Path, language: str) -> Optional[Path]:
    for suffix in (".po", ".mo"):
        path = catalogue_path(locale_dir, language, suffix)
        if path.is_file():
            return path
    return None


def available_languages(templates_dir: Optional[Path] = None) -> List[str]:
    folders = [BUILT_IN_LOCALE] + ([templates_dir / "locale"] if templates_dir is not None else [])
    found = {SOURCE_LANGUAGE}
    for folder in folders:
        if folder.is_dir():
            found.update(child.name for child in folder.iterdir() if _found(folder, child.name) is not None)
    return sorted(found)


def load_translations(language: str, templates_dir: Optional[Path] = None) -> gettext.NullTranslations:
    """The translations of ``language``: the customer's catalogue first, then the built-in one.
    An unknown language, or a catalogue that cannot be read, stops the start naming the file."""
    if not _LANGUAGE.fullmatch(language):
        raise ConfigurationError("WAREHOUSE_LANGUAGE={!r} is not a language code such as en or it".format(language))
    found = [
        path
        for path in (
            _found(templates_dir / "locale", language) if templates_dir is not None else None,
            _found(BUILT_IN_LOCALE, language),
        )
        if path is not None
    ]
    if not found and language != SOURCE_LANGUAGE:
        raise ConfigurationError(
            "WAREHOUSE_LANGUAGE={}: no catalogue for it (languages available: {}); to add one, put its "
            "{}.po in {}".format(
                language,
                ", ".join(available_languages(templates_dir)),
                DOMAIN,
                catalogue_path(Path("WAREHOUSE_TEMPLATES_DIR") / "locale", language).parent,
            )
        )
    translations: gettext.NullTranslations = gettext.NullTranslations()
    for path in reversed(found):
        try:
            catalogue = read_catalogue(path)
        except CatalogueError as error:
            raise ConfigurationError("WAREHOUSE_LANGUAGE={}: {}".format(language, error)) from None
        catalogue.add_fallback(translations)
        translations = catalogue
    return translations


def install(environment: jinja2.Environment, translations: gettext.NullTranslations, language: str) -> None:
    """Give a Jinja environment the i18n extension over ``translations`` (new-style gettext: a
    ``%(name)s`` in a sentence is filled and escaped by Jinja), ``{% trans %}`` blocks trimmed so
    that a sentence's line breaks in the template are not part of its msgid, and ``language`` for
    ``<html lang>``."""
    environment.add_extension("jinja2.ext.i18n")
    environment.policies["ext.i18n.trimmed"] = True
    environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    environment.globals["language"] = language
    # A reason recorded in English (a rejected line's, a failed session's), said in the language.
    environment.filters["reason"] = lambda text: (
        text if not text else reasons.translate(str(text), translations.gettext)
    )


# The templates whose text is marked for the catalogues (the page's and the core's).
TEMPLATE_FOLDERS = (
    Path(__file__).resolve().parent.parent / "templates",
    Path(__file__).resolve().parent.parent.parent / "warehouse_web" / "templates",
)
Message = Tuple[str, Optional[str]]  # msgid, msgid_plural


def extract_messages(folders: Tuple[Path, ...] = TEMPLATE_FOLDERS) -> Dict[Message, List[str]]:
    """Every marked sentence of the templates in ``folders`` -> where it is (``file:line``), with
    Jinja's own extractor (the one Babel calls), trimmed as the page and the mails trim it."""
    from jinja2.ext import babel_extract

    found: Dict[Message, List[str]] = {}
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".html", ".txt")):
            with path.open("rb") as handle:
                for line, _function, message, _comments in babel_extract(
                    handle, ("_", "gettext", "ngettext"), [], {"trimmed": "true"}
                ):
                    if isinstance(message, str):
                        key: Message = (message, None)
                    elif message is not None:
                        key = (str(message[0]), str(message[1]))
                    else:
                        continue
                    where = "{}/{}:{}".format(folder.parent.name, path.relative_to(folder).as_posix(), line)
                    found.setdefault(key, []).append(where)
    for sentence in reasons.REASONS:
        found.setdefault((sentence, None), []).append("warehouse_core/reasons.py")
    return found


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"{}"'.format(escaped)


def write_po(
    messages: Dict[Message, List[str]], translations: Dict[str, str], header: str, plural_forms: int = 2
) -> str:
    """A ``.po`` file: ``header`` (the msgid "" entry's text) and each message with its places and
    its translation from ``translations`` (the keys and values :func:`parse_po` reads), else empty."""
    lines = ['msgid ""', 'msgstr ""'] + [_quoted(part + "\n") for part in header.strip().split("\n")] + [""]
    for (msgid, plural), places in messages.items():
        lines.append("#: " + " ".join(places))
        if "%(" in msgid:
            lines.append("#, python-format")
        lines.append("msgid " + _quoted(msgid))
        if plural is None:
            lines.append("msgstr " + _quoted(translations.get(msgid, "")))
        else:
            lines.append("msgid_plural " + _quoted(plural))
            forms = translations.get(msgid + "\0" + plural, "").split("\0")
            for index in range(plural_forms):
                lines.append("msgstr[{}] {}".format(index, _quoted(forms[index] if index < len(forms) else "")))
        lines.append("")
    return "\n".join(lines)
