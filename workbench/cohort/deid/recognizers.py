"""Clinical PHI recognizers for Presidio: rules written as (entity, regex, score, group).

Names are capitalised words found next to cues (titles, "my name is", relations), street
addresses are a house number with a street word or suffix, or whatever follows an address
cue; dates, ages, phones, SSNs, MRNs and ZIP codes are patterns with validators. The
patterns use the ``regex`` module (Presidio's own) for Unicode letter classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import regex as re
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

# ---------------------------------------------------------------------------- building blocks

# A capitalised word in any script with case (Ærø, Łódź, O'Neil, Jean-Luc), or an initial.
_CAP = r"(?:\p{Lu}[\p{L}\p{M}'’\-]*[\p{L}\p{M}]|\p{Lu})"
_INITIAL = r"\p{Lu}\."
_PARTICLE = r"(?:van|von|der|den|de|del|della|di|da|dos|das|du|le|la|bin|ibn|al|ter|ten|y)"
# Up to four name words on one line: "Soib K. Kishiev", "Ludwig van Beethoven".
NAME = rf"(?:{_CAP}|{_INITIAL})(?:[ \t]+(?:{_CAP}|{_INITIAL}|{_PARTICLE}(?=[ \t]+(?:\p{{Lu}}|{_PARTICLE}[ \t]+\p{{Lu}})))){{0,3}}"

# Capitalised words that start sentences or label things, never names on their own.
NOT_NAMES = frozenset(
    """
    a an the this that these those there here he she it we they i you his her its our their my your
    me him them us who what when where why how which while if and or but so yes no not
    mr mrs ms miss dr prof sir madam
    patient patients doctor nurse physician hospital clinic name phone email address date
    monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december
    today yesterday tomorrow please thanks thank hello hi dear regards sincerely ok okay
    is was are were be been has have had do does did will would can could should shall
    history diagnosis plan assessment impression exam examination medications allergies
    """.split()
)

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAYS = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)"

# USPS street suffixes (Publication 28) and common abbreviations.
_US_SUFFIXES = """
alley aly annex anx arcade arc avenue ave av bayou byu beach bch bend bnd bluff blf bluffs blfs bottom btm
boulevard blvd branch br bridge brg brook brk brooks burg burgs bypass byp camp cp canyon cyn cape cpe
causeway cswy center ctr centers circle cir circles cliff clf cliffs common commons corner cor corners cors
course crse court ct courts cts cove cv coves creek crk crescent cres crest crst crossing xing crossroad
curve dale dl dam dm divide dv drive dr drives drs estate est estates ests expressway expy extension ext
fall falls fls ferry fry field fld fields flds flat flt flats flts ford frd fords forest frst forge frg
forges fork frk forks frks fort ft freeway fwy garden gdn gardens gdns gateway gtwy glen gln glens green grn
greens grove grv groves harbor hbr harbors haven hvn heights hts highway hwy hill hl hills hls hollow holw
inlet inlt island is islands iss isle junction jct junctions key ky keys knoll knl knolls lake lk lakes lks
landing lndg lane ln light lgt lights loaf lf lock lck locks lcks lodge ldg loop mall manor mnr manors
meadow mdw meadows mdws mews mill ml mills mls mission msn motorway mtwy mount mt mountain mtn mountains
neck nck orchard orch oval park parks parkway pkwy parkways pass passage path pike pine pines place pl
plain pln plains plns plaza plz point pt points pts port prt ports prts prairie pr radial radl ramp ranch
rnch rapid rpd rapids rpds rest rst ridge rdg ridges road rd roads rds route rte row rue run shoal shl
shoals shoals shore shr shores shrs skyway spring spg springs spgs spur spurs square sq squares station sta
stravenue stra stream strm street st streets sts summit smt terrace ter throughway trwy trace trce track
trak trafficway trfy trail trl trailer turnpike tpke underpass upas union un unions valley vly valleys
viaduct via view vw views village vlg villages ville vl vista vis walk walks wall way ways well wl wells wls
""".split()
# Suffixes that are unambiguous in any case; the rest are ordinary English words too
# ("via", "run", "pass"), so they count only when capitalised ("Gairbekov Rapids").
_STRONG_SUFFIXES = set(
    """street st avenue ave av road rd boulevard blvd lane ln drive dr court ct place pl terrace ter
    circle cir highway hwy parkway pkwy square sq way crescent cres""".split()
)
US_SUFFIX = (
    r"(?:(?i:"
    + "|".join(sorted(_STRONG_SUFFIXES, key=len, reverse=True))
    + r")|"
    + "|".join(w.capitalize() for w in sorted(set(_US_SUFFIXES) - _STRONG_SUFFIXES, key=len, reverse=True))
    + r")"
)

# Street words of other countries, as word endings (Mellemvej, Hansinegata, Brixtonlaan,
# Fagradalsbraut, Harjukuja) or as leading words (Rua, Via, Calle, ul.).
_STREET_ENDINGS = """
vej gade gata gatan vägen väg vagen veien vegen vegur braut stræde straede vænget bakken allé alle allee
straße strasse str weg gasse platz ring damm ufer laan plein gracht kade dreef singel steeg markt
tie katu kuja polku kaari tee puiestee utca út körút ulica ulice cesta trg ulitsa prospekt
""".split()
STREET_ENDING = r"(?:" + "|".join(sorted(set(_STREET_ENDINGS), key=len, reverse=True)) + r")"
_STREET_LEADS = """
rua rue via viale vicolo calle carrera avenida avinguda av avda praça praca largo travessa estrada
plaza paseo camino ul ulica aleja al boulevard bd chemin route place quai impasse allée
""".split()
STREET_LEAD = r"(?:" + "|".join(sorted(set(_STREET_LEADS), key=len, reverse=True)) + r")"

_WORD = r"[\p{L}\p{M}][\p{L}\p{M}'’\-]*\.?"
# A word of a street name: capitalised, or written in letters outside ASCII (Þórunnarstræti, πεντέλης).
_STREET_NAME_WORD = r"(?:\p{Lu}[\p{L}\p{M}'’\-]*\.?|[\p{L}\p{M}]*[^\x00-\x7f\d\s][\p{L}\p{M}'’\-]*\.?|(?i:ul|al|u|str|rua|rue|via|calle)\.?)"
_HOUSE = r"\d{1,6}(?:[ \t]?[A-Za-z](?![\p{L}]))?"
_UNIT = r"(?i:(?:apt|apartment|suite|ste|unit|flat|room|rm|floor|fl|bldg|building|box|p\.?\s?o\.?\s?box|psc|cmr))\.?[ \t]*#?[ \t]*\d+[A-Za-z]?"

# ---------------------------------------------------------------------------- rule engine


@dataclass(frozen=True)
class Rule:
    """One pattern: ``group`` (default the whole match) becomes an ``entity`` with ``score``.

    ``require`` is a cheap pattern that every match of ``pattern`` contains; a text without
    it is skipped, which spares a pattern that backtracks at every position a scan of text
    that cannot match (the results are the same).
    """

    entity: str
    pattern: str
    score: float
    group: str | int = 0
    flags: int = re.MULTILINE
    validate: Callable[[str], bool] | None = None
    require: str | None = None

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, self.flags | re.VERSION1)

    def prefilter(self) -> re.Pattern[str] | None:
        """The compiled ``require`` pattern, or None."""
        return None if self.require is None else re.compile(self.require, self.flags | re.VERSION1)


class RuleRecognizer(EntityRecognizer):
    """A Presidio recognizer over a list of :class:`Rule` (groups let cues stay unredacted)."""

    def __init__(self, name: str, rules: Sequence[Rule]) -> None:
        self._rules = [(r, r.compiled(), r.prefilter()) for r in rules]
        super().__init__(supported_entities=sorted({r.entity for r in rules}), name=name)

    def load(self) -> None:
        """Nothing to load: the patterns are compiled in the constructor."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Every match of every rule whose entity was asked for."""
        out: list[RecognizerResult] = []
        wanted = set(entities)
        for rule, rx, needed in self._rules:
            if rule.entity not in wanted or (needed is not None and needed.search(text) is None):
                continue
            for m in rx.finditer(text):
                start, end = m.span(rule.group)
                if start < 0 or end <= start:
                    continue
                value = text[start:end]
                # Trim trailing spaces and sentence punctuation the pattern swallowed.
                stripped = value.rstrip(" \t\r\n,;:")
                end -= len(value) - len(stripped)
                value = stripped
                if not value or (rule.validate is not None and not rule.validate(value)):
                    continue
                out.append(RecognizerResult(rule.entity, start, end, rule.score))
        return out


# ---------------------------------------------------------------------------- validators


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _is_name(value: str) -> bool:
    words = [w.strip(".,").casefold() for w in value.split()]
    return bool(words) and not all(w in NOT_NAMES or len(w) < 2 for w in words)


_DATE_LIKE = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$")


def _is_phone(value: str) -> bool:
    n = len(_digits(value))
    if not 7 <= n <= 15 or _DATE_LIKE.match(value.strip()):
        return False
    groups = re.findall(r"\d+", value)
    # A lone run of digits is a phone only when long enough to be a full number.
    return len(groups) > 1 or n >= 10


def _is_ssn(value: str) -> bool:
    d = _digits(value)
    return len(d) == 9 and d[:3] not in {"000", "666"} and d[3:5] != "00" and d[5:] != "0000"


_NOT_STREET_WORDS = frozenset(
    """mg mcg g kg ml l mmhg bpm units unit tablets tablet times days weeks months years hours minutes
    hr rr bp spo2 pulse temp weight height bmi grade type stage step steps page pages chapter version
    room floor bed lot dose doses cycle cycles visit visits
    jan feb mar apr may jun jul aug sep sept oct nov dec january february march april june july august
    september october november december mon tue wed thu fri sat sun""".split()
)


def _has_street_word(value: str) -> bool:
    words = re.findall(r"[\p{L}\p{M}][\p{L}\p{M}'’\-]*", value)
    if not words or any(w.casefold() in _NOT_STREET_WORDS for w in words):
        return False
    # A sentence break inside ("40 mg. Seen by Dr") is two sentences, not a street.
    if re.search(r"[\p{L}]{3,}\.[ \t]+\p{Lu}", value):
        return False
    return any(len(w) >= 3 for w in words)


def _has_name_word(value: str) -> bool:
    """Some word is capitalised or written outside ASCII, as place names are."""
    return re.search(r"(?<![\p{L}])\p{Lu}[\p{L}]|[^\x00-\x7f\d\s]", value) is not None


def _is_year(value: str) -> bool:
    return 1900 <= int(value) <= 2099


def _is_age(value: str) -> bool:
    return 0 <= int(value) <= 125


# ---------------------------------------------------------------------------- rules

_CUE_NAME_BEFORE = (
    r"(?i:\b(?:my|his|her|their|your|the|patient'?s?|pt'?s?)?[ \t]*"
    r"(?:full[ \t]|first[ \t]|last[ \t]|given[ \t]|family[ \t]|maiden[ \t]|middle[ \t]|sur|nick)?name"
    r"(?:[ \t]+on[ \t]+the[ \t]+\w+)?(?:[ \t]+(?:is|was|=))?)"
    r"[ \t]*[:\-?]?[ \t]*(?:\w+:[ \t]*)?"
)
_RELATIONS = (
    r"husband|wife|spouse|partner|son|daughter|mother|father|mom|dad|brother|sister|"
    r"grandmother|grandfather|grandson|granddaughter|aunt|uncle|cousin|niece|nephew|friend|"
    r"kid|child|guardian|caregiver|neighbou?r|boss|colleague|roommate|fianc[ée]e?"
)

PERSON_RULES: list[Rule] = [
    # A text that opens with a name on its own line: a letter head, a signature, a contact card.
    Rule(
        "PERSON",
        rf"\A[ \t>]*(?P<n>{_CAP}(?:[ \t]+(?:{_CAP}|{_INITIAL}|{_PARTICLE})){{1,3}})[ \t]*$",
        0.6,
        "n",
        validate=lambda v: _is_name(v) and not v.isupper(),
    ),
    # Titles: "Mrs. Barbara Yudina", "Dr Chen".
    Rule(
        "PERSON",
        rf"(?i:\b(?:mr|mrs|ms|miss|mx|dr|prof|professor|sir|dame|lady|lord|rev|fr|mister|madam|mme|mlle|herr|frau|señor|señora|sr|sra)\b\.?)[ \t]+(?P<n>{NAME})",
        0.85,
        "n",
        validate=_is_name,
    ),
    # "My name is X", "Name: X", "What's your last name? X", "the name on the account? User: X".
    Rule("PERSON", rf"{_CUE_NAME_BEFORE}(?P<n>{NAME})", 0.85, "n", validate=_is_name),
    # Self-introductions and naming verbs.
    Rule(
        "PERSON",
        rf"(?i:\b(?:i[ \t]+am|i'm|i’m|this[ \t]+is|it'?s|call[ \t]+me|called|named|known[ \t]+as|"
        rf"aka|signed|sincerely|regards|dear|hi|hello|hey|attn|attention|contact|cc|add|under|by|"
        rf"seen[ \t]+by|referred[ \t]+by|accompanied[ \t]+by|"
        rf"(?:my|his|her|their|your|our|the[ \t]+patient'?s)[ \t]+(?:{_RELATIONS}))\b),?[ \t]+(?P<n>{NAME})",
        0.7,
        "n",
        validate=_is_name,
    ),
    # "X's address", "X lives at", "X, can I".
    Rule(
        "PERSON",
        rf"(?P<n>{NAME})(?=(?:'s|’s)[ \t]+(?i:address|phone|number|email|birthday|date[ \t]of[ \t]birth|home|mother|father|wife|husband|son|daughter))",
        0.6,
        "n",
        validate=_is_name,
    ),
    Rule(
        "PERSON",
        rf"(?P<n>{NAME})(?=[ \t]+(?i:lives|lived|resides|resided|was[ \t]+born|is[ \t]+a[ \t]+\d|has[ \t]+given|had[ \t]+given))",
        0.6,
        "n",
        validate=_is_name,
    ),
]

ADDRESS_RULES: list[Rule] = [
    # US style: "3784 Archwood Avenue", "12 N. Elm St., Apt 4".
    Rule(
        "STREET_ADDRESS",
        rf"(?<![\w.,/:-]){_HOUSE}(?:[ \t]+(?:[NSEW]\.?|north|south|east|west))?(?:[ \t]+(?:{_WORD}|\d+(?:st|nd|rd|th)?)){{0,4}}[ \t]+{US_SUFFIX}\b\.?"
        rf"(?:[ \t]*,?[ \t]*{_UNIT})*",
        0.75,
        flags=re.MULTILINE,
        validate=_has_street_word,
    ),
    # Street word ending or leading street word, with a house number after: "Mellemvej 32", "Rua Igreja 25".
    Rule(
        "STREET_ADDRESS",
        rf"(?:(?<![\p{{L}}]){_HOUSE}[ \t]+)?(?:{_WORD}[ \t]+){{0,3}}[\p{{L}}\p{{M}}]*(?i:{STREET_ENDING})\.?[ \t]+\d{{1,5}}[A-Za-z]?\b\.?",
        0.7,
        # Tried at every letter this pattern was most of the rule time; a digit after a
        # street ending is rare, and found from the digits it costs almost nothing.
        require=rf"(?<=(?i:{STREET_ENDING})\.?[ \t]+)\d",
    ),
    Rule(
        "STREET_ADDRESS",
        rf"(?:(?<![\p{{L}}]){_HOUSE}[ \t]+)?(?<![\p{{L}}])(?i:{STREET_LEAD})\.?[ \t]+(?:{_WORD}[ \t]+){{0,5}}?\d{{1,5}}[A-Za-z]?\b",
        0.65,
    ),
    # House number before a leading street word: "12 Rue de Rivoli", "4 Via Roma".
    Rule(
        "STREET_ADDRESS",
        rf"(?<![\w.,/:-])\d{{1,5}}[A-Za-z]?[ \t]+(?i:{STREET_LEAD})\.?(?:[ \t]+(?:{_PARTICLE}[ \t]+)*\p{{Lu}}[\p{{L}}\p{{M}}'’\-]*){{1,4}}",
        0.65,
    ),
    # House number, street name, number (the order of many countries' formats): "233 Erzsébet tér 19".
    Rule(
        "STREET_ADDRESS",
        rf"(?<![\w.,/:-])\d{{1,6}}[ \t]+(?P<w>(?:{_STREET_NAME_WORD}[ \t]+){{1,4}})\d{{1,5}}[A-Za-z]?(?![\w/:])\.?",
        0.55,
        validate=_has_street_word,
    ),
    # "the corner of X and Y" (a place, whatever the street names look like).
    Rule(
        "STREET_ADDRESS",
        r"(?i:\b(?:the[ \t]+)?corner[ \t]+of)[ \t]+[^\n?!]{2,60}?[ \t]+(?i:and|&)[ \t]+[^\n?!,]{2,60}?(?=[ \t]*(?:[?!,]|\.(?:\s|$)|\n|$))",
        0.6,
    ),
    # Units and boxes: "Apt. 675", "Suite 201", "P.O. Box 255", "PSC 0413, Box 8144".
    Rule("STREET_ADDRESS", rf"(?<![\p{{L}}]){_UNIT}\b", 0.6),
    # Military and postal lines: "APO AA 42323".
    Rule("STREET_ADDRESS", r"\b(?i:APO|FPO|DPO)[ \t]+(?i:AA|AE|AP)[ \t]+\d{5}\b", 0.8, flags=0),
    # A ship's name above its fleet post office: "USNS Saibara\nFPO AP 12428".
    Rule(
        "STREET_ADDRESS",
        r"\b(?i:USNS|USNV|USS|USCGC)[ \t]+[\p{L}'’\-]+(?:[ \t]+[\p{L}'’\-]+)?[ \t]*\n[ \t]*(?i:FPO|APO)[ \t]+(?i:AA|AE|AP)[ \t]+\d{5}\b",
        0.85,
        flags=0,
    ),
    # After an address cue, take the rest of the clause when it holds a number or an address word.
    Rule(
        "STREET_ADDRESS",
        r"(?i:\b(?:address(?:[ \t]+(?:is|was|to|with))?|lives?[ \t]+(?:at|on)|lived[ \t]+(?:at|on|in)|"
        r"living[ \t]+at|resides?[ \t]+at|located[ \t]+(?:at|on|in)|is[ \t]+at|moved[ \t]+to|"
        r"sent[ \t]+to|send[ \t]+(?:it[ \t]+)?to|ship[ \t]+(?:it[ \t]+)?to|deliver(?:ed)?[ \t]+to|return[ \t]+to|"
        r"meet(?:[ \t]+(?:me|you|us))?[ \t]+at|drops?[ \t]+(?:you|me)[ \t]+off[ \t]+at|corner[ \t]+of|"
        r"taxi[ \t]+to|stop[ \t]+at|arrived[ \t]+at|side[ \t]+of|it'?s[ \t]+in)\b)[ \t]*:?[ \t]*"
        r"(?P<a>(?=[^\n.?!]*\d)[^\n?!]{3,120}?)(?=[ \t]*(?:[?!]|\.(?:\s|$)|\n|$|[ \t]+(?:for|after|last|in[ \t]+case|the[ \t]+first|street\b|st\.)))",
        0.55,
        "a",
        validate=lambda v: _has_street_word(v) and _has_name_word(v),
    ),
    # An "Address:" label on its own line: the block that follows, to the next blank line.
    Rule(
        "STREET_ADDRESS",
        r"(?i:\baddress)[ \t]*:?[ \t]*\n[ \t]*(?P<a>\S[^\n]*(?:\n[ \t]*\S[^\n]*){0,5})",
        0.6,
        "a",
    ),
    # Lines of a postal block: "Gdańsk, nan 84968", "Toronto\n, ON\n Canada 27539", "Aalborg NO 9100".
    Rule(
        "STREET_ADDRESS",
        r"(?m:^[ \t>]*(?P<a>(?:\p{Lu}[\p{L}\p{M}'’.\-]*[ \t]*){1,3}(?:\([\p{L} ]+\)[ \t]*)?,?[ \t]*"
        r"(?:\n[ \t]*,[ \t]*)?(?:[\p{Lu}\d]{2,3}|nan)?[ \t]*(?:\n[ \t]*)?(?:\p{Lu}[\p{L}'’\-]*[ \t]+)*\d{4,5}(?:-\d{3,4})?)[ \t]*$)",
        0.5,
        "a",
    ),
]

DATE_RULES: list[Rule] = [
    # 2020-06-20, 2020-06-20 14:11:22, 2020-06-20T14:11
    Rule(
        "DATE_TIME",
        r"\b\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b",
        0.85,
    ),
    # 7/14/1995, 14.07.95, 14-07-1995
    Rule("DATE_TIME", r"(?<![\d/.-])\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})(?![\d/-]|\.\d)", 0.75),
    # 07/2019 (a bare "4/5" is more often a strength grade or a ratio than a date)
    Rule("DATE_TIME", r"(?<![\d/.])\d{1,2}/(?:19|20)\d{2}(?![\d/])", 0.5),
    # 14 July 1995, 14th of July, July 14, 1995, Jul 14th, July 1995
    Rule(
        "DATE_TIME",
        rf"(?i:\b\d{{1,2}}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?{_MONTHS}\.?(?:,?[ \t]+\d{{2,4}})?\b)",
        0.8,
        flags=re.MULTILINE,
    ),
    Rule(
        "DATE_TIME",
        rf"(?i:\b{_MONTHS}\.?[ \t]+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?[ \t]+\d{{4}}\b)?)",
        0.8,
        flags=re.MULTILINE,
    ),
    Rule("DATE_TIME", rf"(?i:\b{_MONTHS}\.?,?[ \t]+(?:of[ \t]+)?\d{{4}}\b)", 0.8),
    # Capitalised month names on their own ("in March"); "may" is too common a word.
    Rule(
        "DATE_TIME",
        r"\b(?:January|February|March|April|June|July|August|September|October|November|December)\b",
        0.5,
        flags=0,
    ),
    # Weekdays ("on Sunday morning").
    Rule("DATE_TIME", r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?\b", 0.6, flags=0),
    # A year on its own, unless it is a quantity ("2000 mg").
    Rule(
        "DATE_TIME",
        r"(?<![\w.,/$£€#-])(?P<y>(?:19|20)\d{2})(?:'?s)?(?![\w/%.,]\d|[ \t]*(?i:mg|mcg|ug|g|kg|ml|l|units?|iu|mmol|%|cc|m|km|cm|mm|lbs?|kcal|cal|steps|dollars|usd|eur)\b)(?!\d)",
        0.5,
        "y",
        validate=_is_year,
    ),
    # Times of day: 14:05, 2:30 pm
    Rule("DATE_TIME", r"(?i:\b\d{1,2}:\d{2}(?::\d{2})?(?:[ \t]*[ap]\.?m\.?)?\b)", 0.6),
    Rule("DATE_TIME", r"(?i:\b\d{1,2}[ \t]*[ap]\.?m\.?(?!\w))", 0.55),
]

AGE_RULES: list[Rule] = [
    # "79 year old", "79-year-old", "79 yo", "79 y/o", "79yo", "aged 79", "age: 79", "turned 50".
    Rule(
        "AGE",
        r"(?i:(?<![\d.])(?P<a>\d{1,3})[ \t-]*(?:years?|yrs?|y\.?o\.?|y/o|yo|year-old|years-old)(?:[ \t-]+old)?\b)",
        0.8,
        "a",
        validate=_is_age,
    ),
    Rule(
        "AGE",
        r"(?i:\b(?:aged?|age[ \t]*:|turn(?:ed|s|ing)?|i'?m|i[ \t]+am|he'?s|she'?s|is|was|at)[ \t]+(?P<a>\d{1,3})\b(?![ \t]*(?:%|mg|kg|lbs?|cm|mm|minutes?|hours?|days?|weeks?|months?|times?|am|pm|:|/|\.\d)))",
        0.55,
        "a",
        validate=_is_age,
    ),
]

CONTACT_RULES: list[Rule] = [
    Rule(
        "PHONE_NUMBER",
        r"(?<![\w+/.:-])(?:\+\d{1,3}[ .\-]?)?(?:\(0\)[ ]?)?(?:\(\d{1,5}\)[ .\-]?)?\d{1,12}(?:[ .\-]\d{1,12}){0,5}(?![\w/]|[.:-]\d)",
        0.5,
        validate=_is_phone,
    ),
    Rule("US_SSN", r"(?<![\d-])\d{3}([- .])\d{2}\1\d{4}(?![\d-])", 0.85, validate=_is_ssn),
    Rule(
        "US_SSN",
        r"(?i:\b(?:ssn|social[ \t]+security(?:[ \t]+(?:number|no\.?|#))?)\b[^\d\n]{0,20}?(?P<s>\d{9}|\d{3}[- .]\d{2}[- .]\d{4})\b)",
        0.9,
        "s",
        validate=_is_ssn,
    ),
    Rule(
        "MRN",
        r"(?i:\b(?:mrn|medical[ \t]+record(?:[ \t]+(?:number|no\.?|#))?|mr[ \t]*#|record[ \t]+(?:number|no\.?|#)|"
        r"patient[ \t]+(?:id|number|no\.?|#)|chart[ \t]+(?:number|no\.?|#)|acct(?:ount)?[ \t]*(?:number|no\.?|#)?)"
        r"[ \t]*(?:is|was)?[ \t]*[:#=]?[ \t]*(?P<m>[A-Z]{0,4}[-]?\d[\dA-Z-]{3,}))",
        0.85,
        "m",
    ),
    Rule(
        "US_DRIVER_LICENSE",
        r"(?i:\b(?:driver'?s?[ \t]+licen[cs]e|licen[cs]e|dl)(?:[ \t]+(?:number|no\.?|#))?(?:[ \t]+is)?[ \t]*[:#]?[ \t]*(?P<d>[A-Z]{0,3}\d[\dA-Z-]{3,}))",
        0.8,
        "d",
    ),
    Rule(
        "ZIP_CODE",
        r"(?i:\b(?:zip|postal[ \t]*code|post[ \t]*code)(?:[ \t]*code)?(?:[ \t]+is)?[ \t]*:?[ \t]*(?P<z>(?=[A-Z]{0,4}\d)[A-Z\d]{2,5}(?:[ \t-][A-Z\d]{2,4})?)\b)",
        0.8,
        "z",
    ),
    # "Springfield, MA 02139"
    Rule("ZIP_CODE", r"(?<=\b[A-Z]{2}[ \t]+)\d{5}(?:-\d{4})?\b", 0.6, flags=0),
]


def default_recognizers(lexicon: frozenset[str] = frozenset()) -> list[EntityRecognizer]:
    """The clinical rule recognizers, one per family of entities (``lexicon``: dictionary words)."""
    return [
        RuleRecognizer("WbPersonRules", PERSON_RULES),
        AddressRecognizer("WbAddressRules", ADDRESS_RULES),
        ProperNameRecognizer(lexicon),
        RuleRecognizer("WbDateRules", DATE_RULES),
        RuleRecognizer("WbAgeRules", AGE_RULES),
        RuleRecognizer("WbContactRules", CONTACT_RULES),
    ]


# ---------------------------------------------------------------------------- known identifiers

_KNOWN_TYPES = {
    "family": "PERSON",
    "given": "PERSON",
    "prefix": None,
    "name": "PERSON",
    "names": "PERSON",
    "address_line": "STREET_ADDRESS",
    "address": "STREET_ADDRESS",
    "addresses": "STREET_ADDRESS",
    "city": "LOCATION",
    "phone": "PHONE_NUMBER",
    "phones": "PHONE_NUMBER",
    "email": "EMAIL_ADDRESS",
    "ssn": "US_SSN",
    "mrn": "MRN",
}


def _value_pattern(value: str, entity: str) -> str | None:
    value = value.strip()
    if entity in {"PHONE_NUMBER", "US_SSN"}:
        digits = _digits(value)
        if entity == "PHONE_NUMBER" and len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        if len(digits) < 7:
            return None
        # Any separators between the digits: "555-201-3344" finds "(555) 201 3344".
        return r"(?<!\d)" + r"[\s().\-]*".join(digits) + r"(?!\d)"
    # Synthea appends digits to names ("Aaron697"); notes may use either form.
    base = re.sub(r"\d+$", "", value) if entity == "PERSON" else value
    if len(base) < 2:
        return None
    words = [re.escape(w) for w in base.split()]
    body = r"[\s,.]+".join(words)
    return rf"(?<![\p{{L}}\d]){body}(?:\d+)?(?![\p{{L}}\d])"


def known_identifier_recognizer(known: object) -> RuleRecognizer | None:
    """A one-off recognizer for the patient's own identifiers (names, address, phone, ...).

    ``known`` is a mapping of field name to a value or list of values (``{"given": ["Ann"],
    "family": "Lee", "phone": "555-201-3344"}``) or a plain list of strings (taken as names).
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(known, dict):
        for field, values in known.items():
            entity = _KNOWN_TYPES.get(str(field), "ID")
            if entity is None:
                continue
            items = values if isinstance(values, list | tuple | set | frozenset) else [values]
            pairs.extend((entity, str(v)) for v in items if v not in (None, ""))
    elif isinstance(known, Iterable) and not isinstance(known, str | bytes):
        pairs.extend(("PERSON", str(v)) for v in known if v not in (None, ""))
    rules: list[Rule] = []
    for entity, value in pairs:
        candidates = [value]
        if entity == "PERSON":
            # Each part of a multi-word name is identifying on its own ("Mrs. Lee").
            candidates += [w for w in value.split() if len(re.sub(r"\d+$", "", w)) >= 3]
        for cand in candidates:
            pattern = _value_pattern(cand, entity)
            if pattern is not None:
                rules.append(Rule(entity, pattern, 0.95, flags=re.IGNORECASE | re.MULTILINE))
    return RuleRecognizer("WbKnownIdentifiers", rules) if rules else None


# ---------------------------------------------------------------------------- addresses over lines

# One token of an address continuation: a capitalised or numeric word, a short code
# (state, "nan" for a missing one), a bracketed note ("(Greek)") or a unit.
_ADDR_TOKEN = re.compile(
    r"^(?:[\p{Lu}\d][\p{L}\p{M}\p{N}'’.\-∆]*,?|\([\p{L} ]+\),?|[a-z]{2,3},?|(?i:apt|suite|ste|unit|box|p\.o\.|po)\.?,?|,|u|v|z|y|e|na|nad|pod|of)$",
    re.VERSION1,
)
# Lower-case words that occur inside place names ("Rue de Rivoli", "Velká Bukovina u Decína").
_ADDRESS_LOWER_WORDS = frozenset(
    "nan de du des la le les del della da do dos das di van von der den u v z y e".split()
)
_LOWER_WORD = re.compile(r"^\p{Ll}", re.VERSION1)


def _address_like(segment: str, *, max_tokens: int = 7) -> bool:
    tokens = segment.split()
    return 0 < len(tokens) <= max_tokens and all(_ADDR_TOKEN.match(t) for t in tokens)


def extend_address(text: str, start: int, end: int) -> int:
    """Extend a street match over the rest of its postal block: city, region, country, ZIP.

    On the same line it takes the capitalised words, codes and numbers that follow (up to
    a lowercase word or sentence punctuation); then each following line that looks like an
    address line, up to a blank line.
    """
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    rest = text[end:line_end]
    taken = 0
    for m in re.finditer(r"[ \t,]*([^\s,]+,?)", rest):
        token = m.group(1)
        bare = token.rstrip(".,")
        if not bare or _LOWER_WORD.match(bare) and bare not in _ADDRESS_LOWER_WORDS:
            break
        if not _ADDR_TOKEN.match(token.rstrip(".")) and not _ADDR_TOKEN.match(token):
            break
        if token.endswith(".") and len(bare) > 3 and not bare.isdigit():
            taken = m.end() - 1  # a sentence ends here
            break
        taken = m.end()
    end += len(rest[:taken].rstrip(" \t,.")) if taken else 0
    if taken < len(rest.rstrip()):
        return end  # the line goes on with other words: the block ends here
    pos = line_end
    while pos < len(text):
        nxt = text.find("\n", pos + 1)
        nxt = len(text) if nxt < 0 else nxt
        line = text[pos + 1 : nxt]
        body = line.strip().lstrip(">?*•·- \t").rstrip(".?!")
        if not body.strip() or not _address_like(body):
            # A last line that starts like an address and then goes on in prose: take its start.
            head = re.match(r"^[ \t>]*(\S.{0,60}?\d{4,6})(?=\.?[ \t]+\S)", line)
            if head is not None and body.strip() and _address_like(head.group(1)):
                end = pos + 1 + head.end(1)
            break
        end = pos + 1 + len(line.rstrip(" \t.?!"))
        pos = nxt
    return end


class AddressRecognizer(RuleRecognizer):
    """Street rules, each match extended over its postal block."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Street matches with the city, region, country and ZIP lines that follow them."""
        results = super().analyze(text, entities, nlp_artifacts)
        for r in results:
            r.end = max(r.end, extend_address(text, r.start, r.end))
        return results


# ---------------------------------------------------------------------------- proper names

# NER labels whose tokens are places, times or groups, never people.
_NOT_PERSON_LABELS = frozenset(
    {
        "GPE",
        "LOC",
        "DATE",
        "TIME",
        "NORP",
        "LANGUAGE",
        "MONEY",
        "PERCENT",
        "QUANTITY",
        "CARDINAL",
        "ORDINAL",
    }
)


_NAME_BEFORE = frozenset(
    """, and & or by with to from for under me named called call add tell told said says asked dear hi
    hello thanks " “ ( meet met visited is was unlike""".split()
)
_NAME_AFTER = frozenset(""", and & or 's ’s " ” )""".split())


class ProperNameRecognizer(EntityRecognizer):
    """Runs of title-case proper nouns (the tagger's NNP) that the NER model left unlabelled.

    The small English model tags unfamiliar names as proper nouns more reliably than it
    labels them as people; with a blank pipeline (no tagger) this finds nothing.
    """

    def __init__(self, lexicon: frozenset[str] = frozenset()) -> None:
        super().__init__(supported_entities=["PERSON"], name="WbProperNames")
        # Dictionary words ("Nose", "Education", "Multiple Sclerosis") are headings and terms.
        self._lexicon = lexicon

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Each maximal run of proper nouns that is not a known place, date or common word."""
        if "PERSON" not in entities or nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        doc = nlp_artifacts.tokens
        if not doc.has_annotation("TAG"):
            return []
        blocked = {
            i for ent in doc.ents if ent.label_ in _NOT_PERSON_LABELS for i in range(ent.start, ent.end)
        }
        out: list[RecognizerResult] = []
        run: list[Any] = []

        def flush() -> None:
            # Titles and labels at either end stay visible ("Mr. <PERSON>").
            while run and run[0].text.casefold().rstrip(".") in NOT_NAMES:
                run.pop(0)
            while run and run[-1].text.casefold().rstrip(".") in NOT_NAMES:
                run.pop()
            if (
                run
                and _is_name(" ".join(t.text for t in run))
                and any(len(t.text) > 2 for t in run)
                and in_context(run)
            ):
                out.append(RecognizerResult("PERSON", run[0].idx, run[-1].idx + len(run[-1].text), 0.45))
            run.clear()

        def in_context(toks: list[Any]) -> bool:
            # Two or more proper nouns read as a full name; a single one needs a cue beside it.
            if len(toks) > 1:
                return True
            first, last = toks[0], toks[-1]
            prev = doc[first.i - 1] if first.i > 0 else None
            nxt = doc[last.i + 1] if last.i + 1 < len(doc) else None
            if prev is not None and prev.text.casefold() in _NAME_BEFORE:
                return True
            return nxt is not None and (
                nxt.text.casefold() in _NAME_AFTER or nxt.tag_.startswith(("VB", "MD"))
            )

        for tok in doc:
            word = tok.text
            name_like = (
                tok.tag_ in {"NNP", "NNPS"}
                and word[:1].isupper()
                and not (word.isupper() and len(word) > 2)
                and tok.i not in blocked
                and word.casefold() not in NOT_NAMES
                and re.fullmatch(r"[\p{L}\p{M}'’.\-]+", word) is not None
            )
            if name_like and (not run or run[-1].i == tok.i - 1):
                run.append(tok)
            else:
                flush()
                if name_like:
                    run.append(tok)
        flush()
        return out
