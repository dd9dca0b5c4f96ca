"""A prompt's words as a scene: what the preview engine's text-to-video draws.

`parse(prompt)` reads the (enhanced) prompt into a `SceneSpec`: the time of
day, the sky and weather, the setting (and any other settings named with
it), named colours and what they colour, the mood, simple subjects with the
motion their verbs give them, and camera moves as official concept keys
(`domain/concepts.py`). It is a word matcher, not a language model: words
are lowercased and stemmed ("driving" and "drives" are "drive"), each
vocabulary entry has its synonyms, phrases ("pan left", "golden hour",
"under the sea", "bird's eye view") are matched before single words, and
filler words may sit inside a phrase ("the camera pans slowly to the left").
Words it does not know change nothing here; the renderer turns them into a
hash-driven palette nudge, or a whole palette when no word is known.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from reelgate.domain.concepts import CONCEPTS

RGB = tuple[int, int, int]

TIMES = ("dawn", "day", "sunset", "dusk", "night")
WEATHERS = ("clear", "clouds", "rain", "snow", "fog", "storm")
SETTINGS = (
    "ocean", "beach", "lake", "river", "mountains", "desert", "forest", "fields",
    "city", "space", "volcano", "underwater", "interior", "landscape",
)  # fmt: skip
MOODS = ("neutral", "calm", "dramatic", "eerie", "joyful", "gloomy")
SUBJECTS = ("person", "car", "bird", "boat", "rocket", "tree", "house")
MOTIONS = ("still", "left", "right", "up", "down", "toward", "away")


@dataclass(frozen=True)
class Subject:
    """Something drawn as a silhouette: what it is, where it goes and how fast
    (1 is its kind's usual pace), how many, and its colour if one was named."""

    kind: str
    motion: str = "still"
    speed: float = 1.0
    count: int = 1
    colour: RGB | None = None


@dataclass(frozen=True)
class SceneSpec:
    """What a prompt describes, as far as the preview can draw it."""

    time: str = "day"
    weather: str = "clear"
    setting: str = "landscape"
    """The main setting: it decides the ground (or the whole picture, for
    space, underwater and interior)."""
    extras: tuple[str, ...] = ()
    """Other settings named with it, drawn too where they fit (the mountains
    behind a lake, a volcano under a space sky)."""
    mood: str = "neutral"
    subjects: tuple[Subject, ...] = ()
    camera: tuple[str, ...] = ()
    """Official concept keys, in the order the prompt names them."""
    sky_colours: tuple[RGB, ...] = ()
    water_colour: RGB | None = None
    ground_colour: RGB | None = None
    accent_colours: tuple[RGB, ...] = ()
    """Named colours tied to nothing in particular: they tint the light."""
    windy: bool = False
    intense: bool = False
    """Erupting, crashing, raging: more of everything that moves."""
    known: bool = False
    """Whether any word was recognised (else the renderer invents a palette)."""
    unknown: tuple[str, ...] = ()
    """The words it did not know, which nudge the palette."""
    picture: tuple[str, ...] = ()
    """The words that describe the picture (not the camera): they fix its
    composition with the seed, so "pan left" moves the same scene."""

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.setting, *self.extras)


# --------------------------------------------------------------------------- words


def words(prompt: str) -> list[str]:
    """Case and punctuation do not change a scene; words do."""
    return re.findall(r"[^\W_]+", prompt.lower())


def digest_int(*parts: str) -> int:
    """A stable 64-bit integer (Python's hash() is salted per process)."""
    data = "\x1f".join(parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


_IRREGULAR = {
    "flew": "fly", "flown": "fly", "drove": "drive", "driven": "drive", "ran": "run",
    "rose": "rise", "risen": "rise", "fell": "fall", "fallen": "fall", "sank": "sink",
    "sunk": "sink", "swam": "swim", "people": "person", "men": "man", "women": "woman",
    "children": "child", "geese": "goose", "leaves": "leaf", "took": "take",
}  # fmt: skip


def stem(word: str) -> str:
    """A light stemmer: plural and verb endings off, a final e off."""
    word = _IRREGULAR.get(word, word)
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        word = _undouble(word[:-3])
    elif len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        word = _undouble(word[:-2])
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def _undouble(word: str) -> str:
    if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]
    return word


# --------------------------------------------------------------------------- vocabulary
# Each table: value -> synonyms. A synonym with spaces is a phrase.

_TIME = {
    "dawn": "dawn sunrise daybreak morning sunup|first light|early morning",
    "day": "day daytime noon midday afternoon sunny sunshine daylight sunlit summer"
    "|blue sky|broad daylight",
    "sunset": "sunset sundown|golden hour|setting sun|evening sun",
    "dusk": "dusk twilight evening nightfall gloaming|blue hour",
    "night": "night midnight nighttime nocturnal moonlight moonlit starlit starry",
}
_TIME_HINTS = {"night": "moon stars star dark darkness neon fireworks lantern", "day": "sun"}
"""Words that suggest a time when none is named."""

_WEATHER = {
    "storm": "storm stormy thunder thunderstorm lightning tempest hurricane typhoon cyclone"
    " tornado",
    "snow": "snow snowy snowfall snowflake snowflakes blizzard snowstorm winter wintry frost"
    " frosty icy frozen arctic glacier polar",
    "rain": "rain rainy rainfall drizzle downpour shower monsoon wet raindrop",
    "fog": "fog foggy mist misty haze hazy smog murky",
    "clouds": "cloud cloudy overcast|grey sky|gray sky",
    "clear": "clear cloudless",
}
_WEATHER_ORDER = ("storm", "snow", "rain", "fog", "clouds", "clear")

_SETTING = {
    "underwater": "underwater undersea reef coral seabed seafloor aquarium scuba diver kelp"
    " jellyfish fish shark whale dolphin submarine|under the sea|under water|deep sea"
    "|ocean floor|sea floor|beneath the waves",
    "interior": "room bedroom kitchen interior indoors indoor office library hallway"
    " cafe restaurant apartment classroom attic|living room",
    "space": "space galaxy nebula planet cosmos cosmic universe mars jupiter saturn asteroid"
    " starfield|outer space|deep space",
    "volcano": "volcano volcanic lava magma eruption erupt crater",
    "city": "city skyline downtown skyscraper building street town metropolis urban neon"
    " cyberpunk avenue rooftop alley traffic tokyo manhattan|new york",
    "beach": "beach shore seashore seaside shoreline island tropical",
    "ocean": "ocean sea seascape wave surf harbour harbor port bay coast coastal coastline"
    " marina pier tide water",
    "lake": "lake pond lagoon loch reservoir",
    "river": "river stream creek brook canal rapids waterfall riverbank riverside",
    "mountains": "mountain mount peak summit alps alpine ridge cliff himalaya everest",
    "desert": "desert dune sand sahara arid mesa canyon wasteland badlands cactus oasis",
    "forest": "forest woods woodland jungle rainforest trees pines grove taiga redwood",
    "fields": "field meadow farm farmland prairie grassland grass savanna savannah countryside"
    " pasture garden park lawn wheat crops valley hill hillside plain vineyard",
}
_SETTING_PRIORITY = ("underwater", "interior", "space")
"""Settings that are the whole picture when named; the rest are layered."""

_MOOD = {
    "dramatic": "dramatic epic intense powerful majestic cinematic moody fierce violent raging"
    " apocalyptic",
    "eerie": "eerie creepy spooky haunted ominous mysterious sinister horror ghostly surreal",
    "gloomy": "gloomy sad melancholy melancholic lonely somber sombre bleak dreary",
    "joyful": "joyful happy cheerful vibrant colourful colorful playful festive fun lively"
    " bright magical",
    "calm": "calm quiet peaceful serene tranquil gentle relaxing soft lazy sleepy still idyllic",
}

_SUBJECT = {
    "person": "person man woman boy girl child kid astronaut hiker runner surfer dancer figure"
    " traveler traveller couple crowd soldier knight explorer fisherman pedestrian walker"
    " cowboy lady guy wizard warrior",
    "car": "car truck van taxi jeep bus vehicle motorcycle motorbike convertible suv"
    "|race car|sports car",
    "bird": "bird eagle seagull gull hawk crow dove swallow pigeon parrot owl flock goose duck"
    " swan butterfly dragon",
    "boat": "boat ship sailboat yacht canoe kayak ferry raft vessel steamboat galleon",
    "rocket": "rocket spaceship spacecraft shuttle missile starship ufo|space shuttle",
    "tree": "tree palm oak pine willow birch maple",
    "house": "house home cabin cottage hut barn farmhouse lighthouse castle church village chalet",
}
_SUITS = {"astronaut": (235, 235, 240), "ghost": (230, 230, 235), "knight": (150, 155, 165)}
"""Subjects whose usual colour is not a dark silhouette's."""
_PLURAL_ONLY = {"crowd": 5, "couple": 2, "flock": 5, "traffic": 3, "village": 3}

_NUMBERS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "several": 3, "many": 5, "few": 3,
    "pair": 2,
}  # fmt: skip

# motion words: (direction or "go", speed)
_MOTION: dict[str, tuple[str, float]] = {}
for _names, _motion in (
    ("walk stroll wander hike march pace step trek", ("go", 0.6)),
    ("run jog sprint race rush dash chase speed gallop hurry", ("go", 1.6)),
    ("drive ride cruise travel move cross pass head commute", ("go", 1.0)),
    ("fly soar glide flutter flap hover", ("go", 1.0)),
    ("sail float drift row paddle swim", ("go", 0.6)),
    ("launch liftoff rise ascend climb lift up upward upwards skyward|take off|blast off"
     "|lift off|into the sky", ("up", 1.0)),
    ("fall drop descend sink land dive plunge down downward downwards", ("down", 1.0)),
    ("left leftward leftwards westward", ("left", 1.0)),
    ("right rightward rightwards eastward", ("right", 1.0)),
    ("toward towards approach closer nearer arrive come|at the camera|to the camera",
     ("toward", 1.0)),
    ("away depart leave recede retreat|into the distance|off into", ("away", 1.0)),
    ("stand sit wait rest park parked stationary idle sleep moored anchored docked",
     ("still", 0.0)),
):  # fmt: skip
    for _syn in _names.split("|")[0].split() + _names.split("|")[1:]:
        _MOTION[_syn] = _motion

COLOURS: dict[str, RGB] = {
    "red": (200, 35, 40), "crimson": (160, 20, 45), "scarlet": (220, 45, 30),
    "orange": (240, 130, 30), "amber": (250, 170, 40), "yellow": (245, 210, 50),
    "gold": (230, 180, 60), "golden": (230, 180, 60), "green": (50, 160, 60),
    "emerald": (20, 140, 90), "lime": (150, 210, 50), "teal": (20, 140, 140),
    "turquoise": (60, 200, 190), "cyan": (40, 200, 220), "aqua": (60, 210, 210),
    "blue": (40, 90, 210), "navy": (20, 35, 100), "azure": (60, 140, 230),
    "purple": (120, 50, 170), "violet": (140, 80, 200), "lavender": (180, 150, 220),
    "magenta": (210, 40, 160), "pink": (240, 120, 170), "rose": (230, 100, 130),
    "brown": (120, 75, 40), "white": (240, 240, 240), "black": (18, 18, 22),
    "grey": (128, 128, 128), "gray": (128, 128, 128), "silver": (190, 195, 205),
    "autumn": (200, 100, 30), "autumnal": (200, 100, 30),
}  # fmt: skip
"""The colour names the preview knows ("autumn" colours the ground)."""

_COLOUR_TARGETS = {
    "sky": "sky skies heaven heavens cloud clouds",
    "water": "water sea ocean lake river wave waves pond lagoon stream",
    "ground": "ground grass field fields sand dune dunes desert hill hills mountain mountains"
    " forest leaf leaves tree trees meadow valley",
}

_CAMERA = {  # alternatives separated by |
    "pan_left": "pan left", "pan_right": "pan right|pan",
    "tilt_up": "tilt up|tilt", "tilt_down": "tilt down",
    "zoom_in": "zoom in|zoom", "zoom_out": "zoom out",
    "push_in": "push in|dolly in|dolly forward|dolly",
    "pull_out": "pull out|pull back|dolly out|dolly back",
    "dolly_zoom": "dolly zoom|vertigo effect|vertigo shot",
    "truck_left": "truck left|track left|tracking left", "truck_right": "truck right|track right"
    "|tracking right",
    "crane_up": "crane up|crane shot|jib up", "crane_down": "crane down|jib down",
    "pedestal_up": "pedestal up", "pedestal_down": "pedestal down",
    "orbit_left": "orbit left|circle left", "orbit_right": "orbit right|orbit around|orbit"
    "|circle around|arc shot",
    "roll_left": "camera roll left|roll counterclockwise", "roll_right": "camera roll right"
    "|roll clockwise",
    "aerial": "aerial|aerial view|aerial shot|from above",
    "aerial_drone": "drone|drone shot|fpv|flyover",
    "overhead": "overhead|top down|bird eye view|birds eye view|bird eye",
    "low_angle": "low angle|worm eye view|looking up at",
    "high_angle": "high angle|looking down on|looking down at",
    "handheld": "handheld|hand held|shaky cam|shaky camera",
    "pov": "pov|point of view|first person",
    "selfie": "selfie",
    "static": "static shot|static camera|locked off|tripod shot|still camera",
    "tiny_planet": "tiny planet|little planet",
    "elevator_doors": "elevator door|elevator doors",
    "over_the_shoulder": "over the shoulder",
    "bolt_cam": "bolt cam|bolt camera",
    "eye_level": "eye level",
    "ground_level": "ground level",
}  # fmt: skip

_FILLER = frozenset(
    {"the", "a", "an", "to", "slowly", "gently", "quickly", "slow", "fast", "camera", "very"}
    | {"of", "its", "s", "into", "onto"}
)
"""Words a phrase may skip over between its own words."""
_STOP = frozenset(
    _FILLER
    | {"in", "on", "at", "and", "with", "by", "from", "for", "over", "under", "is", "are"}
    | {"it", "this", "that", "as", "while", "their", "his", "her", "some", "shot", "view"}
    | {"scene", "video", "clip"}
)
"""Words that are neither known nor unknown: they nudge nothing."""
_SKIP_LIMIT = 3


# --------------------------------------------------------------------------- matching


@dataclass
class _Token:
    raw: str
    stem: str
    used: bool = False


@dataclass(frozen=True)
class _Entry:
    table: str
    value: str
    parts: tuple[str, ...]


def _entries() -> list[_Entry]:
    tables: dict[str, dict[str, str]] = {
        "camera": _CAMERA,
        "time": _TIME,
        "hint": _TIME_HINTS,
        "weather": _WEATHER,
        "setting": _SETTING,
        "mood": _MOOD,
        "subject": _SUBJECT,
    }
    out: list[_Entry] = []
    for table, values in tables.items():
        for value, text in values.items():
            for synonym in text.split("|") if table == "camera" else _synonyms(text):
                out.append(_Entry(table, value, tuple(map(_key, synonym.split()))))
    for synonym, motion in _MOTION.items():
        out.append(_Entry("motion", f"{motion[0]}:{motion[1]}", tuple(map(_key, synonym.split()))))
    for name in COLOURS:
        out.append(_Entry("colour", name, (_key(name),)))
    for name in _NUMBERS:
        out.append(_Entry("number", name, (name,)))
    # longest phrases first; the camera's before others of the same length
    order = {"camera": 0}
    out.sort(key=lambda e: (-len(e.parts), order.get(e.table, 1)))
    return out


def _synonyms(text: str) -> Iterable[str]:
    """'a b|c d|e' -> single words a, b, then phrases 'c d', 'e'."""
    first, *phrases = text.split("|")
    yield from first.split()
    yield from phrases


_AS_WRITTEN = frozenset({"evening", "trees", "pines", "woods", "sands", "stars"})
"""Words whose stem would mean something else ("trees" is a forest, "tree"
a tree; "evening" is not "even"): they match only as written."""


def _key(raw: str) -> str:
    return raw if raw in _AS_WRITTEN else stem(raw)


_ENTRIES = _entries()
_BY_FIRST: dict[str, list[_Entry]] = {}
for _entry in _ENTRIES:
    _BY_FIRST.setdefault(_entry.parts[0], []).append(_entry)


def _tokens(prompt: str) -> list[_Token]:
    """The prompt's words (case and punctuation do not change a scene)."""
    return [_Token(raw, _key(raw)) for raw in words(prompt)]


def _match(tokens: list[_Token], i: int, entry: _Entry) -> list[int] | None:
    """Token indexes of `entry` starting at i, or None. Filler words may sit
    between a phrase's words (not before its first)."""
    at = [i]
    j = i + 1
    for part in entry.parts[1:]:
        skipped = 0
        while j < len(tokens) and tokens[j].stem != part:
            if tokens[j].raw not in _FILLER or skipped >= _SKIP_LIMIT:
                return None
            skipped += 1
            j += 1
        if j >= len(tokens) or tokens[j].used:
            return None
        at.append(j)
        j += 1
    return at


@dataclass
class _Found:
    table: str
    value: str
    at: int
    """Index of its first token."""
    span: tuple[int, ...]


def _scan(tokens: list[_Token]) -> list[_Found]:
    """Every vocabulary match, longest phrases first, each token used once."""
    found: list[_Found] = []
    lengths = sorted({len(e.parts) for e in _ENTRIES}, reverse=True)
    for length in lengths:
        for i, token in enumerate(tokens):
            if token.used:
                continue
            for entry in _BY_FIRST.get(token.stem, []):
                if len(entry.parts) != length:
                    continue
                span = _match(tokens, i, entry)
                if span is None:
                    continue
                for j in span:
                    tokens[j].used = True
                found.append(_Found(entry.table, entry.value, i, tuple(span)))
                break
    found.sort(key=lambda f: f.at)
    return found


# --------------------------------------------------------------------------- parse


def parse(prompt: str) -> SceneSpec:
    """The scene a prompt describes; see the module docstring."""
    tokens = _tokens(prompt)
    found = _scan(tokens)
    first = _firsts(found)

    time = first.get("time") or first.get("hint")
    weather = next((w for w in _WEATHER_ORDER if any(_is(f, "weather", w) for f in found)), None)
    named = _ordered_unique(f.value for f in found if f.table == "setting")
    setting, extras = _settings(named)
    if time is None:
        time = "night" if setting == "space" else "day"

    subjects, colours = _subjects_and_colours(tokens, found)
    camera = _ordered_unique(f.value for f in found if f.table == "camera")
    camera = tuple(key for key in camera if key in CONCEPTS)
    raws = {t.raw for t in tokens}
    known = bool(found)
    unknown = tuple(t.raw for t in tokens if not t.used and t.raw not in _STOP)
    camera_at = {j for f in found if f.table == "camera" for j in f.span}
    picture = tuple(
        t.raw for j, t in enumerate(tokens) if j not in camera_at and t.raw not in _STOP
    )
    return SceneSpec(
        time=time,
        weather=weather or "clear",
        setting=setting,
        extras=extras,
        mood=first.get("mood") or "neutral",
        subjects=subjects,
        camera=camera,
        sky_colours=colours["sky"],
        water_colour=next(iter(colours["water"]), None),
        ground_colour=next(iter(colours["ground"]), None),
        accent_colours=colours["scene"],
        windy=bool(raws & {"wind", "windy", "breeze", "breezy", "gust", "gale", "blizzard"}),
        intense=bool(
            {stem(w) for w in raws}
            & {"erupt", "crash", "rag", "explod", "roar", "pour", "heavy", "violent", "wild"}
        ),
        known=known,
        unknown=unknown,
        picture=picture,
    )


def _firsts(found: list[_Found]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in found:
        out.setdefault(f.table, f.value)
    return out


def _is(f: _Found, table: str, value: str) -> bool:
    return f.table == table and f.value == value


def _ordered_unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _settings(named: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The main setting and the others it can show."""
    if not named:
        return "landscape", ()
    for whole in _SETTING_PRIORITY:
        if whole in named:
            others = tuple(s for s in named if s != whole)
            if whole == "space":
                return whole, others  # a space sky over whatever ground was named
            if whole == "interior":
                return whole, tuple(s for s in others if s in ("city", "ocean", "mountains"))
            return whole, ()
    rest = list(named)
    if "ocean" in rest and "desert" in rest:  # sand by the sea is a beach
        rest.remove("desert")
        if "beach" not in rest:
            rest.insert(rest.index("ocean"), "beach")
    if "beach" in rest and "ocean" in rest:
        rest.remove("ocean")
    # water in front of land: a mountain lake is a lake with mountains behind it
    water = [s for s in rest if s in ("beach", "ocean", "lake", "river")]
    main = water[0] if water else rest[0]
    return main, tuple(s for s in rest if s != main)


def _subjects_and_colours(
    tokens: list[_Token], found: list[_Found]
) -> tuple[tuple[Subject, ...], dict[str, tuple[RGB, ...]]]:
    colours: dict[str, list[RGB]] = {"sky": [], "water": [], "ground": [], "scene": []}
    subject_at = {f.at: f for f in found if f.table == "subject"}
    subject_colour: dict[int, RGB] = {}
    for f in found:
        if f.table != "colour":
            continue
        rgb = COLOURS[f.value]
        target = _colour_target(tokens, f.at, subject_at)
        if isinstance(target, int):
            subject_colour[target] = rgb
        else:
            colours["ground" if f.value.startswith("autumn") else target].append(rgb)
    subjects = []
    motions = [f for f in found if f.table == "motion"]
    numbers = {f.at: _NUMBERS[f.value] for f in found if f.table == "number"}
    kinds: set[str] = set()
    for at, f in subject_at.items():
        if f.value in kinds:
            continue  # one of each kind: a long (enhanced) prompt names things again
        kinds.add(f.value)
        motion, speed = _motion_for(f, tokens, motions, set(subject_at))
        raw = tokens[at].raw
        count = _PLURAL_ONLY.get(raw, 1)
        if count == 1 and raw != tokens[at].stem and raw.endswith("s") and len(f.span) == 1:
            count = 3  # "birds", "boats"
        if raw == "people":
            count = 3
        for j in range(max(0, at - 3), at):
            count = numbers.get(j, count)
        if motion == "go":  # moving, no direction said: the prompt picks a side
            side = digest_int("side", *(t.raw for t in tokens), str(at)) % 2
            motion = ("left", "right")[side]
        colour = subject_colour.get(at, _SUITS.get(tokens[at].stem))
        subjects.append(Subject(f.value, motion, speed, min(count, 6), colour))
    return tuple(subjects), {k: tuple(v) for k, v in colours.items()}


def _colour_target(tokens: list[_Token], at: int, subject_at: dict[int, _Found]) -> str | int:
    """What a colour word colours: the subject or thing just after it, else the scene."""
    for j in range(at + 1, min(len(tokens), at + 4)):
        if j in subject_at:
            return j
        for target, names in _COLOUR_TARGETS.items():
            if tokens[j].raw in names.split():
                return target
    # "the sky turns pink": a target just before it
    for j in range(max(0, at - 3), at):
        for target, names in _COLOUR_TARGETS.items():
            if tokens[j].raw in names.split():
                return target
    return "scene"


def _motion_for(
    subject: _Found, tokens: list[_Token], motions: list[_Found], subjects: set[int]
) -> tuple[str, float]:
    """The subject's motion: the motion words near it (those after it first,
    none past another subject), a direction and a pace; its kind's habit
    when there are none."""
    at = subject.at
    near: list[tuple[int, _Found]] = []
    for m in motions:
        lo, hi = (m.at, at) if m.at < at else (at, m.at)
        if m.at < at and at - m.at > 2:
            continue
        if m.at > at and m.at - at > 7:
            continue
        between = range(lo + 1, hi)
        if any(j in subjects for j in between):
            continue
        near.append((abs(m.at - at) + (0 if m.at > at else 3), m))
    near.sort(key=lambda pair: pair[0])
    direction, speed = "", 0.0
    for _, m in near:
        what, pace = m.value.split(":")
        if what == "go":
            speed = speed or float(pace)
        elif what == "still":
            if not direction:
                direction, speed = "still", 0.0
        elif not direction or direction == "still":
            direction = what
    kind = subject.value
    if direction == "still":
        return "still", 0.0
    if not direction:
        if speed == 0.0 and kind in ("person", "tree", "house"):
            return "still", 0.0
        direction = "up" if kind == "rocket" else "go"
    if kind in ("tree", "house"):
        return "still", 0.0
    return direction, speed or 1.0
