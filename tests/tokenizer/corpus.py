"""A deterministic corpus of strings for tokenizer parity tests (seeded, so
every run checks the same >= 2000 strings): medical reports, JSON prompts,
many languages and scripts, emoji and ZWJ sequences, control characters,
whitespace runs, tabs/CRLF, very long words, special-token strings inline,
characters outside the vocabulary (byte fallback), and the empty string."""

import json
import random

LANGS = [
    "The patient presents with acute chest pain radiating to the left arm.",
    "Le patient présente une douleur thoracique aiguë irradiant vers le bras gauche.",
    "Der Patient klagt über akute Brustschmerzen mit Ausstrahlung in den linken Arm. Größe: 1,82 m.",
    "El paciente presenta dolor torácico agudo que se irradia al brazo izquierdo. ¿Alergias? ¡No!",
    "O paciente apresenta dor torácica aguda irradiando para o braço esquerdo; saturação 94%.",
    "Пациент жалуется на острую боль в груди, отдающую в левую руку.",
    "Ο ασθενής παρουσιάζει οξύ θωρακικό άλγος που αντανακλά στο αριστερό χέρι.",
    "يعاني المريض من ألم حاد في الصدر يمتد إلى الذراع الأيسر.",
    "המטופל מתלונן על כאב חד בחזה המקרין לזרוע שמאל.",
    "रोगी को बाएं हाथ तक फैलने वाला तीव्र सीने में दर्द है।",
    "রোগীর বুকে তীব্র ব্যথা যা বাম হাতে ছড়িয়ে পড়ছে।",
    "நோயாளிக்கு இடது கைக்கு பரவும் கடுமையான மார்பு வலி உள்ளது.",
    "ผู้ป่วยมีอาการเจ็บหน้าอกเฉียบพลันร้าวไปที่แขนซ้าย",
    "患者出现急性胸痛，放射至左臂。血压 140/90 mmHg。",
    "患者は左腕に放散する急性の胸痛を訴えている。ＣＴ検査を実施。",
    "환자는 왼팔로 방사되는 급성 흉통을 호소합니다.",
    "Bệnh nhân bị đau ngực cấp tính lan ra cánh tay trái.",
    "Hasta sol kola yayılan akut göğüs ağrısı ile başvurdu. Şikâyet: öksürük.",
    "Pacjent zgłasza ostry ból w klatce piersiowej promieniujący do lewego ramienia. Źle się czuje.",
    "პაციენტს აღენიშნება მწვავე ტკივილი გულმკერდში.",
    "Հիվանդը գանգատվում է կրծքավանդակի սուր ցավից։",
    "ታካሚው ወደ ግራ ክንድ የሚዛመት ከባድ የደረት ህመም አለው።",
    "អ្នកជំងឺមានការឈឺទ្រូងធ្ងន់ធ្ងរ។",
    "လူနာသည် ရင်ဘတ်နာကျင်မှု ရှိသည်။",
    "රෝගියාට දැඩි පපුවේ වේදනාවක් ඇත.",
    "ནད་པ་ལ་བྲང་ན་ཟུག་ཡོད།",
    "Өвчтөн цээжээр хүчтэй өвдөж байна.",
    "Potilaalla on akuutti rintakipu, joka säteilee vasempaan käteen.",
    "Pasien mengalami nyeri dada akut yang menjalar ke lengan kiri.",
    "Mgonjwa ana maumivu makali ya kifua yanayoenea hadi mkono wa kushoto.",
    "Bệnh án: Tiền sử tăng huyết áp, đái tháo đường type 2.",
    "ᐃᓄᒃᑎᑐᑦ ᑎᑎᕋᐅᓯᖅ",
    "ꯃꯤꯇꯩꯂꯣꯟ ꯑꯃꯁꯨꯡ ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "𐌰𐌱𐌲 𓂀𓃀 𒀀𒀁 𐀀𐀁 𝔄𝔅ℭ 𝟘𝟙𝟚 𠀀𠀁𪜀",
]

EMOJI = [
    "😀", "🩺", "💊", "🫀", "🫁", "🧠", "👩‍⚕️", "🧑🏽‍⚕️", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "❤️‍🩹", "🇺🇸", "🇯🇵",
    "🇪🇺", "1️⃣", "#️⃣", "👍🏿", "🤷‍♀️", "🧬", "🦠", "🩻", "⚕️", "☢️", "🔬", "🙂‍↔️", "🐈‍⬛", "🫶🏼",
]

SPECIALS = [
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "[multimodal]", "<start_of_turn>", "<end_of_turn>",
    "<start_of_image>", "<end_of_image>", "<image_soft_token>", "<unused0>", "<unused94>", "<unused95>",
    "<unused6241>", "<table>", "</td>", "<bbox>", "<h1>", "<b>", "<s>", "</s>", "<img>",
    # near misses that must not match as a whole
    "<bos", "<start_of_tur", "<unused6242>", "<unused99999>", "<<bos>>", "</bos>", "<BOS>", "< bos>",
    "▁", "▁▁", "▁▁▁▁▁▁", "▁" * 40, "\t" * 35, "\n" * 35,
]

CONTROL = [chr(c) for c in range(0x00, 0x20)] + ["\x7f", "\x85", "\u00a0", "\u200b", "\u200c", "\u200d",
                                                  "\u200e", "\u2028", "\u2029", "\ufeff", "\u3000", "\u202e",
                                                  "\ufffd", "\ufffe", "\uffff"]

# Code point ranges to sample from; several have characters outside the
# vocabulary, which byte fallback must spell as <0xXX> pieces.
RANGES = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0xDFF),
    (0xE00, 0xEFF), (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1680, 0x169F), (0x16A0, 0x16FF),
    (0x1D00, 0x1DBF), (0x2000, 0x2BFF), (0x2E80, 0x2FDF), (0x3040, 0x30FF), (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF), (0xA000, 0xA4CF), (0xA4D0, 0xABFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF),
    (0xF900, 0xFFFD), (0x10000, 0x1047F), (0x10800, 0x10FFF), (0x11000, 0x11FFF), (0x12000, 0x1254F),
    (0x13000, 0x1342F), (0x16800, 0x16FFF), (0x1D400, 0x1D7FF), (0x1F000, 0x1FAFF), (0x20000, 0x2A6DF),
    (0x2F800, 0x2FA1F), (0x30000, 0x3134F), (0xE0000, 0xE007F), (0xF0000, 0xF00FF), (0x10FF00, 0x10FFFF),
]

FINDINGS = [
    "No acute cardiopulmonary process.", "Mild cardiomegaly.", "Small left pleural effusion.",
    "Right lower lobe consolidation, concerning for pneumonia.", "Degenerative changes of the thoracic spine.",
    "Endotracheal tube terminates 4.2 cm above the carina.", "Hounsfield units: -1024 to +3071.",
    "Nodule measuring 8 x 6 mm (previously 7 x 5 mm).", "No pneumothorax.", "Lungs are clear bilaterally.",
    "Hgb 10.2 g/dL; WBC 12.3 × 10⁹/L; CRP ≥ 50 mg/L; temp 38.5 °C; SpO₂ 92 %.",
    "s/p CABG ×3; EF ~35–40%; NYHA class III.", "Impression:\n1. Stable.\n2. Follow-up in 3–6 months.",
]


def medical_report(rng):
    lines = [
        f"PATIENT ID: {rng.randint(10**6, 10**7)}    DOB: {rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-"
        f"{rng.randint(1, 28):02d}",
        rng.choice(["EXAM: CHEST PA AND LATERAL", "CT ABDOMEN/PELVIS W/ CONTRAST", "MRI BRAIN W/WO",
                    "US RUQ", "XR KNEE 3V"]),
        "FINDINGS:",
    ]
    lines += rng.sample(FINDINGS, rng.randint(1, 5))
    lines.append("IMPRESSION: " + rng.choice(FINDINGS))
    sep = rng.choice(["\n", "\r\n", "\n\n", "  \n", "\t\n"])
    return sep.join(lines)


def json_prompt(rng):
    value = {
        "task": rng.choice(["localize", "classify", "report"]),
        "labels": rng.sample(["nodule", "effusion", "fracture", "mass", "atelectasis", "edema"], 3),
        "box_2d": [rng.randint(0, 1000) for _ in range(4)],
        "confidence": round(rng.random(), 4),
        "notes": rng.choice(LANGS),
        "nested": {"a": [1, 2.5, None, True, False], "b": {"c": "d\"e\\f"}},
    }
    text = json.dumps(value, ensure_ascii=rng.random() < 0.3, indent=rng.choice([None, 2, 4, "\t"]))
    wrap = rng.choice(["{}", "Final Answer: ```json\n{}\n```", "Return JSON like {}.", "<unused94>think<unused95>{}"])
    return wrap.replace("{}", text, 1) if wrap != "{}" else text


def random_chars(rng, n):
    out = []
    for _ in range(n):
        lo, hi = rng.choice(RANGES)
        cp = rng.randint(lo, hi)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0x41
        out.append(chr(cp))
    return "".join(out)


def whitespace(rng):
    return "".join(rng.choice([" " * rng.randint(1, 40), "\t" * rng.randint(1, 40), "\n" * rng.randint(1, 40),
                               "\r\n" * rng.randint(1, 5), "\r", "\u00a0", "\u3000", " \t \n", "word"])
                   for _ in range(rng.randint(1, 8)))


def long_word(rng):
    return rng.choice([
        "a" * rng.randint(100, 6000),
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(200, 3000))),
        "pneumonoultramicroscopicsilicovolcanoconiosis" * rng.randint(2, 40),
        "".join(rng.choice("0123456789") for _ in range(rng.randint(100, 2000))),
        "https://example.org/" + "/".join("seg%d" % i for i in range(rng.randint(10, 200))),
        "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                for _ in range(rng.randint(200, 4000))) + "==",
        "".join(rng.choice(EMOJI) for _ in range(rng.randint(20, 200))),
        "字" * rng.randint(50, 1000),
        "".join(rng.choice(LANGS)) .replace(" ", ""),
    ])


def fragment(rng):
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice(LANGS)
    if kind == 1:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 6)))
    if kind == 2:
        return rng.choice(SPECIALS)
    if kind == 3:
        return "".join(rng.choice(CONTROL) for _ in range(rng.randint(1, 4)))
    if kind == 4:
        return whitespace(rng)
    if kind == 5:
        return random_chars(rng, rng.randint(1, 12))
    if kind == 6:
        return rng.choice(FINDINGS)
    if kind == 7:
        return str(rng.uniform(-1e6, 1e6))
    return rng.choice(["mg", "µg/kg", "ml/min/1.73m²", "½", "≤", "±", "→", "°", "Ⅳ", "ﬁ", "é", "é", "Å", "Å"])


def corpus(seed=20260, n=2400):
    rng = random.Random(seed)
    out = ["", " ", "  ", "\n", "\r\n", "\t", "a", "<bos>", "<bos><bos>", "<start_of_image>", " <eos> ",
           "▁", "▁hello", "hello▁world", "\x00", "\x00\x00abc\x00"]
    out += LANGS + EMOJI + SPECIALS + CONTROL
    out += [chr(c) for c in range(0x20, 0x7F)]
    builders = [medical_report, json_prompt, lambda r: random_chars(r, r.randint(1, 200)), whitespace, long_word,
                lambda r: "".join(fragment(r) for _ in range(r.randint(2, 25))),
                lambda r: rng.choice(SPECIALS).join(fragment(r) for _ in range(r.randint(2, 6))),
                lambda r: " ".join(fragment(r) for _ in range(r.randint(2, 10)))]
    while len(out) < n:
        out.append(builders[len(out) % len(builders)](rng))
    return out


if __name__ == "__main__":
    c = corpus()
    print(len(c), "strings,", sum(len(s.encode()) for s in c), "bytes")
