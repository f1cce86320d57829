"""Offline English text corpora from gensim's bundled test data.

Every loader reads files that the ``gensim`` wheel ships in
``gensim/test/test_data``; nothing is downloaded. Three corpora are available:

* :func:`load_wiki_texts` -- the shortened English Wikipedia dump (about a
  hundred articles) cleaned of wiki markup;
* :func:`load_lee_texts` -- the Lee background corpus (300 news paragraphs);
* :func:`load_newsgroups_texts` -- 200 labelled posts of the 20 Newsgroups
  data set (``alt.atheism`` and ``sci.space``).

:func:`load_default_corpus` concatenates the three. All loaders are pure
functions returning new lists on every call.
"""

from __future__ import annotations

import bz2
import copyreg
import functools
import io
import pickle
import re
import zlib
from typing import Any

import numpy as np

from ._packages import gensim_test_file

__all__ = [
    "load_default_corpus",
    "load_lee_texts",
    "load_newsgroups_texts",
    "load_wiki_texts",
    "clean_wiki_markup",
]

WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_FILE = "lee_background.cor"
NEWSGROUPS_FILE = "mini_newsgroup"

# Sections after which a Wikipedia article holds only references and links.
_TAIL_SECTIONS = frozenset(
    {
        "references",
        "notes",
        "footnotes",
        "citations",
        "sources",
        "bibliography",
        "further reading",
        "external links",
        "see also",
    }
)
_HEADING = re.compile(r"^\s*(=+)\s*(.*?)\s*\1\s*$")
_EMPHASIS = re.compile(r"'{2,}")
_LEFTOVER = re.compile(r"\{\{[^{}]*\}\}|\{\||\|\}|&nbsp;|__[A-Z]+__")
_LIST_MARK = re.compile(r"^[*#:;]+\s*")
# Gallery entries ("File:Name.jpg|caption"): the file name is dropped.
_GALLERY = re.compile(
    r"^\s*((file|image):[^|]*|[^|]*\.(jpe?g|png|gif|svg|tiff?|ogg|ogv|webm))\s*\|",
    re.IGNORECASE,
)
_IMAGE_OPTION = re.compile(r"\|\s*(alt=.*|thumb\w*|upright[\d.=]*|\d+(x\d+)?px)")
_SPACES = re.compile(r"[ \t]+")
# Quoted text, and the attribution lines that introduce it, in newsgroup posts.
_QUOTE = re.compile(r"^\s*([>|]|in article\b|.*\b(writes|wrote):\s*$)", re.IGNORECASE)


def clean_wiki_markup(raw: str) -> str:
    """Turn the wikitext of one article into plain paragraphs.

    gensim's ``filter_wiki`` removes templates, links, tables, tags and
    comments; this function then drops the reference/link sections at the end,
    unwraps headings (``==History==`` becomes ``History``), keeps only the
    caption of gallery entries (``File:...|caption``), drops image options,
    removes bold and italic quote marks and list bullets, and collapses blank
    lines.

    Parameters
    ----------
    raw : str
        Wikitext of one article.

    Returns
    -------
    str
        Clean article text; paragraphs are separated by a newline.

    Examples
    --------
    >>> raw = "==History==\\n'''Paris''' is a [[city]].\\n==References==\\n* a source"
    >>> clean_wiki_markup(raw)
    'History\\nParis is a city.'
    """
    from gensim.corpora.wikicorpus import filter_wiki

    lines = []
    for line in filter_wiki(raw).splitlines():
        heading = _HEADING.match(line)
        if heading:
            if heading.group(2).strip().lower() in _TAIL_SECTIONS:
                break
            line = heading.group(2)
        line = _GALLERY.sub("", _EMPHASIS.sub("", line))
        line = _IMAGE_OPTION.sub("", line)
        line = _LEFTOVER.sub(" ", line)
        line = _SPACES.sub(" ", _LIST_MARK.sub("", line)).strip()
        if len(line) > 1:
            lines.append(line)
    return "\n".join(lines)


@functools.lru_cache(maxsize=2)
def _wiki_texts(min_words: int) -> tuple[str, ...]:
    from gensim.corpora.wikicorpus import extract_pages

    with bz2.open(gensim_test_file(WIKI_FILE), "rb") as fh:
        pages = [text for _, text, _ in extract_pages(fh, filter_namespaces=("0",))]
    texts = []
    for raw in pages:
        if raw.lstrip().lower().startswith("#redirect"):
            continue
        text = clean_wiki_markup(raw)
        if len(text.split()) >= min_words:
            texts.append(text)
    return tuple(texts)


def load_wiki_texts(min_words: int = 50) -> list[str]:
    """Load the articles of gensim's shortened English Wikipedia dump.

    Redirect pages and articles with fewer than `min_words` words after
    cleaning are skipped. With the default this yields 106 articles, about
    3 million characters (roughly 0.64 million MiniLM word pieces).

    Parameters
    ----------
    min_words : int, default=50
        Minimum number of whitespace-separated words an article must have.

    Returns
    -------
    list of str
        One clean plain-text string per article (see :func:`clean_wiki_markup`).
    """
    return list(_wiki_texts(int(min_words)))


def load_lee_texts() -> list[str]:
    """Load the Lee background corpus (one news paragraph per line).

    Returns
    -------
    list of str
        The 300 non-empty lines of ``lee_background.cor``, stripped.

    Examples
    --------
    >>> texts = load_lee_texts()
    >>> len(texts), all(t == t.strip() and t for t in texts)
    (300, True)
    """
    with open(gensim_test_file(LEE_FILE), encoding="utf-8", errors="replace") as fh:
        return [line.strip() for line in fh if line.strip()]


def _strip_post(post: str) -> str:
    """Remove the quoted lines of one newsgroup post body (headers already gone)."""
    lines = [ln.rstrip() for ln in post.splitlines()]
    lines = [ln for ln in lines if not _QUOTE.match(ln)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class _Bunch(dict):
    """Stand-in for the old ``sklearn.datasets.base.Bunch`` in the pickle."""


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only builds dicts, plain numpy arrays and the Bunch."""

    _allowed = {
        ("copy_reg", "_reconstructor"): copyreg._reconstructor,
        ("__builtin__", "dict"): dict,
        ("sklearn.datasets.base", "Bunch"): _Bunch,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing {module}.{name}") from None


def load_newsgroups_texts(remove_headers: bool = True, remove_quotes: bool = False
                          ) -> tuple[list[str], np.ndarray]:
    """The mini 20 Newsgroups subset in gensim's test data (200 posts).

    Two balanced classes, ``alt.atheism`` and ``sci.space`` (100 posts each),
    read from gensim's ``mini_newsgroup`` file (a zlib-compressed pickle of a
    scikit-learn Bunch) with an unpickler that admits only plain data.

    Parameters
    ----------
    remove_headers : bool, default=True
        Drop the mail headers (they name the newsgroup, i.e. the label).
    remove_quotes : bool, default=False
        Drop quoted lines and the attribution lines introducing them (as
        scikit-learn's ``fetch_20newsgroups(remove=("quotes",))``).

    Returns
    -------
    texts : list of str
        The 200 posts in file order (a post may be empty after removals).
    labels : ndarray of str, shape (200,)
        Newsgroup names.

    Examples
    --------
    >>> texts, labels = load_newsgroups_texts(remove_quotes=True)
    >>> len(texts), labels.shape, sorted(set(labels.tolist()))
    (200, (200,), ['alt.atheism', 'sci.space'])
    """
    raw = zlib.decompress(gensim_test_file(NEWSGROUPS_FILE).read_bytes())
    bunch = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    texts = [str(t) for t in bunch["data"]]
    if remove_headers:
        texts = [t.partition("\n\n")[2] for t in texts]
    if remove_quotes:
        texts = [_strip_post(t) for t in texts]
    labels = np.asarray(bunch["target_names"])[np.asarray(bunch["target"])]
    return texts, labels


def load_default_corpus() -> list[str]:
    """Concatenate the Wikipedia, Lee and newsgroups corpora.

    Returns
    -------
    list of str
        The Wikipedia articles, the Lee paragraphs and the non-empty
        newsgroup posts without headers and quotes: about 600 documents
        and 0.9 million MiniLM word pieces.
    """
    posts = load_newsgroups_texts(remove_quotes=True)[0]
    return load_wiki_texts() + load_lee_texts() + [p for p in posts if p]
