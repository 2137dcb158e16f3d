"""Which CPU class (microarchitecture, as Cloud Carbon Footprint names them) a CPU belongs to.

Three kinds of evidence, in this order:

* the model name: Intel's and AMD's SKU numbering (``Xeon Platinum 8259CL`` → the second digit
  is the generation: Cascade Lake; ``EPYC 7763`` → the last digit: 3rd Gen), ``E5-2680 v3``
  (Haswell), and the model names QEMU gives its built-in CPU models (``Intel Xeon Processor
  (Cascadelake)``, ``AMD EPYC-Rome Processor``);
* the cpuid family/model numbers in ``/proc/cpuinfo`` (``cpu family``/``model``), which a
  hypervisor that masks the model name still passes on: family 6 model 207 is Emerald Rapids.
  The numbers are Intel's and AMD's public ones, as the Linux kernel lists them
  (``arch/x86/include/asm/intel-family.h``);
* on Arm, the implementer/part registers (``CPU implementer``/``CPU part``): Neoverse N1 is the
  Graviton2 core, V1 Graviton3, V2 Graviton4.

Pure functions, no I/O. Each answer carries a short reason for ``keck-top doctor``.
"""
from __future__ import annotations

import re

# Class names exactly as in Cloud Carbon Footprint's coefficient tables.
SANDY, IVY, HASWELL, BROADWELL = "Sandy Bridge", "Ivy Bridge", "Haswell", "Broadwell"
SKYLAKE, CASCADE, COFFEE, ICE = "Skylake", "Cascade Lake", "Coffee Lake", "Ice Lake"
SAPPHIRE, EMERALD, GRANITE = "Sapphire Rapids", "Emerald Rapids", "Granite Rapids"
EPYC = {1: "EPYC 1st Gen", 2: "EPYC 2nd Gen", 3: "EPYC 3rd Gen", 4: "EPYC 4th Gen", 5: "EPYC 5th Gen"}
GRAVITON2, GRAVITON3, GRAVITON4 = "Graviton2", "Graviton3", "Graviton4"

_SCALABLE = {1: SKYLAKE, 2: CASCADE, 3: ICE, 4: SAPPHIRE, 5: EMERALD}
_E5_VERSION = {None: SANDY, 2: IVY, 3: HASWELL, 4: BROADWELL}
_E3_VERSION = {None: SANDY, 2: IVY, 3: HASWELL, 4: BROADWELL, 5: SKYLAKE, 6: SKYLAKE}
_CORE_GEN = {2: SANDY, 3: IVY, 4: HASWELL, 5: BROADWELL, 6: SKYLAKE, 7: COFFEE, 8: COFFEE, 9: COFFEE,
             10: COFFEE}
# QEMU's built-in CPU models: the word in brackets of their model_id.
_QEMU_WORDS = (
    ("sandy bridge", SANDY), ("sandybridge", SANDY), ("ivy bridge", IVY), ("ivybridge", IVY),
    ("haswell", HASWELL), ("broadwell", BROADWELL), ("skylake", SKYLAKE), ("cascadelake", CASCADE),
    ("cooperlake", CASCADE), ("icelake", ICE), ("sapphirerapids", SAPPHIRE), ("graniterapids", GRANITE),
)
_AMD_QEMU = (("epyc-rome", EPYC[2]), ("epyc-milan", EPYC[3]), ("epyc-genoa", EPYC[4]),
             ("epyc-turin", EPYC[5]))
_ARM_NAMES = (("neoverse-n1", GRAVITON2), ("neoverse-v1", GRAVITON3), ("neoverse-v2", GRAVITON4))

# Intel family 6 model numbers (decimal) → class.
_INTEL_MODELS = {
    42: SANDY, 45: SANDY, 58: IVY, 62: IVY, 60: HASWELL, 63: HASWELL, 69: HASWELL, 70: HASWELL,
    61: BROADWELL, 71: BROADWELL, 79: BROADWELL, 86: BROADWELL, 78: SKYLAKE, 94: SKYLAKE,
    142: COFFEE, 158: COFFEE, 165: COFFEE, 166: COFFEE, 106: ICE, 108: ICE, 125: ICE, 126: ICE,
    143: SAPPHIRE, 207: EMERALD, 173: GRANITE, 174: GRANITE,
}
# Arm: (implementer, part) → class. 0x41 is Arm Ltd.
_ARM_PARTS = {(0x41, 0xD0C): GRAVITON2, (0x41, 0xD40): GRAVITON3, (0x41, 0xD4F): GRAVITON4}


def normalise_model_name(name: str) -> str:
    """``Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz`` → ``intel xeon e5-2680 v3``: lower case,
    trademarks, ``CPU``/``Processor``, ``N-Core`` and the clock removed, blanks collapsed."""
    text = name.lower()
    text = re.sub(r"\((r|tm|c)\)", " ", text)
    text = re.sub(r"@\s*[0-9.]+\s*[gm]hz", " ", text)
    text = re.sub(r"\b(\d+|eight|six|four|twelve|sixteen|quad|dual)-core\b", " ", text)
    text = re.sub(r"\b(cpu|processor|with radeon.*|w/ radeon.*)\b", " ", text)
    return " ".join(text.split())


def class_from_model_name(name: str) -> tuple[str, str] | None:
    """(class, why) from a model name, or None when the name does not say."""
    text = normalise_model_name(name)
    if not text:
        return None
    m = re.search(r"xeon (?:platinum|gold|silver|bronze|w)[ -]?(\d)(\d)(\d\d)", text)
    if m and int(m.group(2)) in _SCALABLE:
        cls = _SCALABLE[int(m.group(2))]
        return cls, f"Xeon Scalable SKU {m.group(1)}{m.group(2)}{m.group(3)}: 2nd digit {m.group(2)} is {cls}"
    m = re.search(r"xeon 6\d\d\d?p\b|xeon 6\d\d\d?p-", text)
    if m:
        return GRANITE, "Xeon 6 P-core SKU: Granite Rapids"
    m = re.search(r"xeon e5-\d{4}[a-z]*(?: v(\d))?", text) or re.search(r"xeon e7-\d{4}[a-z]*(?: v(\d))?", text)
    if m:
        version = int(m.group(1)) if m.group(1) else None
        cls = _E5_VERSION.get(version)
        if cls:
            return cls, f"Xeon E5/E7 {'v' + str(version) if version else 'without a version'}: {cls}"
    m = re.search(r"xeon e3-\d{4}[a-z]*(?: v(\d))?", text)
    if m:
        version = int(m.group(1)) if m.group(1) else None
        cls = _E3_VERSION.get(version)
        if cls:
            return cls, f"Xeon E3 {'v' + str(version) if version else 'without a version'}: {cls}"
    if re.search(r"xeon e-2\d{3}", text):
        return COFFEE, "Xeon E-2xxx: Coffee Lake class"
    m = re.search(r"core i[3579]-(\d{4,5})", text)
    if m:
        digits = m.group(1)
        gen = int(digits[:2]) if len(digits) == 5 else int(digits[0])
        cls = _CORE_GEN.get(gen)
        if cls:
            return cls, f"Core i-series generation {gen}: {cls}"
    m = re.search(r"epyc (\d)([0-9a-z])([0-9a-z])(\d)[a-z]*\b", text)
    if m:
        gen = int(m.group(4))
        series = m.group(1)
        if series in ("7",) and 1 <= gen <= 3 or series in ("9", "8", "4") and gen in (4, 5):
            return EPYC[gen], f"EPYC {m.group(0)[5:]}: last digit {gen} is the generation"
    for word, cls in _AMD_QEMU:
        if word in text:
            return cls, f"QEMU CPU model name '{name.strip()}': {cls}"
    for word, cls in _ARM_NAMES:
        if word in text:
            return cls, f"Arm core {word}: the {cls} core"
    if "xeon" in text or "core processor" in text or "intel" in text:
        for word, cls in _QEMU_WORDS:
            if f"({word}" in text or f" {word}" in text:
                return cls, f"QEMU CPU model name '{name.strip()}': {cls}"
    return None


def class_from_cpuid(vendor: str | None, family: int | None, model: int | None,
                     stepping: int | None = None) -> tuple[str, str] | None:
    """(class, why) from x86 cpuid family/model, or None."""
    if family is None or model is None:
        return None
    where = f"cpuid family {family} model {model}"
    if vendor == "GenuineIntel" and family == 6:
        if model == 85:  # Skylake-SP, Cascade Lake (stepping 5-7) and Cooper Lake (10-11)
            cls = CASCADE if (stepping or 0) >= 5 else SKYLAKE
            return cls, f"{where} stepping {stepping}: {cls}"
        cls = _INTEL_MODELS.get(model)
        return (cls, f"{where}: {cls}") if cls else None
    if vendor in ("AuthenticAMD", "HygonGenuine"):
        if family == 23:
            cls = EPYC[1] if model < 0x30 else EPYC[2]
        elif family == 25:
            cls = EPYC[4] if 0x10 <= model <= 0x1F or 0x60 <= model <= 0xAF else EPYC[3]
        elif family == 26:
            cls = EPYC[5]
        else:
            return None
        return cls, f"{where} (Zen generation): {cls}"
    return None


def class_from_arm(implementer: int | None, part: int | None) -> tuple[str, str] | None:
    if implementer is None or part is None:
        return None
    cls = _ARM_PARTS.get((implementer, part))
    return (cls, f"Arm implementer {implementer:#x} part {part:#x}: {cls} core") if cls else None
