"""Static text fragments for the demo mailbox: companies, people, phrases per language.

Kept apart from the generator so the realism (names, charsets, phrasing) can be tuned
without touching the threading logic. All domains are reserved for documentation
(RFC 2606 / RFC 6761): ``*.example``, ``*.test``, ``example.com/org/net``.
"""

# ruff: noqa: RUF001  (non-Latin letters and punctuation are the point of this data)

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Locale:
    """How people from one language area write mail (prefixes, phrasing, legacy charset)."""

    code: str
    legacy_charset: str | None
    utc_offset_hours: int
    reply_prefix: str
    forward_prefix: str
    greeting: str
    signoff: str
    wrote: str
    forwarded: str
    subjects: dict[str, tuple[str, ...]]
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class OrgSpec:
    """A fictitious customer company and its contacts (name, greet-as, emails, job title)."""

    name: str
    domain: str
    locale: str
    industry: str
    city: str
    people: tuple[tuple[str, str, tuple[str, ...], str], ...]


TOPICS = (
    "intro", "demo", "proposal", "pricing", "contract", "onboarding",
    "support", "renewal", "invoice", "meeting", "integration", "feedback",
)  # fmt: skip

EN_SUBJECTS: dict[str, tuple[str, ...]] = {
    "intro": ("Quick intro: CRM email sync for {org}", "Keeping {org}'s pipeline up to date"),
    "demo": ("Demo recording and next steps", "Your sandbox workspace is ready"),
    "proposal": ("Proposal for {org}", "Updated quote Q-{num}"),
    "pricing": ("Pricing for {seats} seats", "Question about volume discounts"),
    "contract": ("Order form and DPA for signature", "Contract redlines"),
    "onboarding": ("Welcome to the platform, {org}!", "Onboarding kickoff"),
    "support": ("Calendar sync stopped for two users", "Ticket #{num}: duplicate contacts"),
    "renewal": ("Your renewal on {renewal}", "Annual review before renewal"),
    "invoice": ("Invoice INV-{num}", "Payment reminder INV-{num}"),
    "meeting": ("Meeting next week?", "Agenda for our call on {when}"),
    "integration": ("API access for your ERP integration", "Webhook setup"),
    "feedback": ("Would you be a reference customer?", "Quick feedback on the rollout"),
}

OWNER_SENTENCES: dict[str, tuple[str, ...]] = {
    "intro": (
        "I'm reaching out because {org} came up in conversations with other {industry} teams.",
        "We help sales teams keep every email and meeting on the right CRM record.",
        "Would a 20-minute call next week be useful to see whether this fits your process?",
    ),
    "demo": (
        "Thanks again for joining the demo today, the recording is linked below.",
        "As discussed, I've set up a sandbox workspace for your team.",
        "Let me know which workflow matters most so we can go deeper next time.",
    ),
    "proposal": (
        "Here is our proposal for {org}, based on {seats} seats.",
        "The quote is valid for 30 days and the onboarding package is included.",
    ),
    "pricing": (
        "For {seats} seats the list price is {price} EUR per seat and month, billed annually.",
        "We can offer 12% off if the order form is signed before the end of the quarter.",
    ),
    "contract": (
        "I've sent the order form for signature; your legal team can redline the MSA directly.",
        "Our DPA follows the EU standard contractual clauses.",
    ),
    "onboarding": (
        "Welcome aboard! Sam from our onboarding team will schedule the kickoff.",
        "You can import your contacts with our CSV template.",
    ),
    "support": (
        "Thanks for reporting this, I've escalated it to our support team.",
        "The fix is rolled out; could you confirm the sync works again on your side?",
    ),
    "renewal": (
        "Your subscription renews on {renewal}; I'd love to review usage with you beforehand.",
        "Adoption looks strong: {seats} active users logged activity last month.",
    ),
    "invoice": (
        "Here is the invoice for the last quarter; payment terms are 30 days net.",
        "Could you let me know the PO number we should reference?",
    ),
    "meeting": (
        "I've sent a calendar invitation for {when}; feel free to forward it to colleagues.",
        "Does {when} still work for you?",
    ),
    "integration": (
        "Our API supports webhooks for contact and deal changes, so your ERP can stay in sync.",
        "I've asked Sam to share the API keys for the sandbox.",
    ),
    "feedback": (
        "Would you be open to sharing a short quote about your experience?",
        "Your feedback on the rollout would help us a lot.",
    ),
}

EN_CUSTOMER_SENTENCES = (
    "Thanks for the quick reply.",
    "We discussed this internally and have a few questions about pricing.",
    "Could you send an overview of the features in the Professional plan?",
    "Our VP of Sales would like to join the next call.",
    "Calendar sync still doesn't work for two of my colleagues.",
    "Tuesday or Wednesday next week would work for us.",
    "Legal has approved the contract, we only need the signature now.",
    "Please send invoices to accounts@{domain}.",
)

# fmt: off
LOCALES: dict[str, Locale] = {
    "en": Locale(
        "en", None, -5, "Re: ", "Fwd: ", "Hi {first},", "Best regards,",
        "On {date}, {sender} wrote:", "---------- Forwarded message ---------",
        EN_SUBJECTS, EN_CUSTOMER_SENTENCES,
    ),
    "de": Locale(
        "de", "iso-8859-1", 1, "AW: ", "WG: ", "Hallo {first},", "Viele Grüße",
        "Am {date} schrieb {sender}:", "---------- Weitergeleitete Nachricht ----------",
        {
            "intro": ("Anfrage: CRM-Integration für {org}",),
            "demo": ("Demo-Termin nächste Woche",),
            "proposal": ("Rückfragen zum Angebot für {org}",),
            "pricing": ("Preisanfrage Lizenzen ({seats} Nutzer)",),
            "support": ("Problem mit der Kalendersynchronisierung",),
            "contract": ("Vertragsunterlagen & AV-Vertrag",),
            "meeting": ("Termin: Besprechung in {city}",),
            "feedback": ("Danke für die Schulung! 🎉",),
        },
        (
            "Vielen Dank für die schnelle Rückmeldung.",
            "Wir haben das Angebot intern besprochen und hätten noch Fragen zur Preisgestaltung.",
            "Könnten Sie uns bitte eine Übersicht der Funktionen im Professional-Tarif schicken?",
            "Unser Geschäftsführer möchte gerne an der nächsten Präsentation teilnehmen.",
            "Die Synchronisierung mit Outlook funktioniert bei zwei Kollegen leider noch nicht.",
            "Nächste Woche Dienstag oder Mittwoch würde uns gut passen.",
            "Bitte schicken Sie die Rechnung an buchhaltung@{domain}.",
            "Die Datenschutzunterlagen hat unsere Rechtsabteilung bereits geprüft.",
        ),
    ),
    "fr": Locale(
        "fr", "iso-8859-1", 1, "RE : ", "TR : ", "Bonjour {first},", "Bien cordialement,",
        "Le {date}, {sender} a écrit :", "-------- Message transféré --------",
        {
            "intro": ("Demande d'information : synchronisation CRM",),
            "demo": ("Démonstration de la plateforme",),
            "proposal": ("Proposition commerciale pour {org}",),
            "pricing": ("Tarifs pour {seats} utilisateurs",),
            "support": ("Problème de synchronisation du calendrier",),
            "meeting": ("Réunion à {city} la semaine prochaine",),
        },
        (
            "Merci pour votre retour rapide.",
            "Nous avons étudié votre proposition avec notre équipe commerciale.",
            "Pourriez-vous nous envoyer le détail des tarifs pour 25 utilisateurs ?",
            "Notre directeur financier souhaite participer à la prochaine réunion.",
            "La synchronisation du calendrier ne fonctionne pas encore chez deux collègues.",
            "Mardi ou mercredi prochain nous conviendrait très bien.",
            "Le contrat a été validé par notre service juridique, il ne manque que la signature.",
        ),
    ),
    "pl": Locale(
        "pl", "iso-8859-2", 1, "Odp: ", "PD: ", "Dzień dobry,", "Pozdrawiam serdecznie",
        "W dniu {date} {sender} napisał(a):", "-------- Przekazana wiadomość --------",
        {
            "intro": ("Zapytanie o integrację CRM dla {org}",),
            "pricing": ("Cennik dla {seats} użytkowników",),
            "support": ("Błąd synchronizacji kalendarza",),
            "contract": ("Umowa i załączniki - prośba o podpis",),
            "meeting": ("Spotkanie w Krakowie - propozycja terminu",),
        },
        (
            "Dziękuję za szybką odpowiedź.",
            "Przeanalizowaliśmy ofertę razem z zespołem sprzedaży.",
            "Czy mogliby Państwo przesłać szczegółowy cennik dla 25 użytkowników?",
            "Nasz prezes chciałby wziąć udział w następnym spotkaniu.",
            "Synchronizacja kalendarza u dwóch kolegów jeszcze nie działa.",
            "Przyszły wtorek lub środa bardzo nam odpowiada.",
            "Umowa została zatwierdzona przez dział prawny, brakuje tylko podpisu.",
        ),
    ),
    "ja": Locale(
        "ja", "shift_jis", 9, "Re: ", "Fw: ", "{first}様", "よろしくお願いいたします。",
        "{date} {sender}:", "-------- 転送メッセージ --------",
        {
            "intro": ("CRM連携についてのお問い合わせ",),
            "proposal": ("お見積もりの件（{org}）",),
            "meeting": ("打ち合わせ日程のご相談",),
            "support": ("カレンダー同期の不具合について",),
        },
        (
            "早速のご返信ありがとうございます。",
            "社内でご提案内容を検討いたしました。",
            "25ユーザー分の詳細なお見積もりをお送りいただけますでしょうか。",
            "次回の打ち合わせには弊社の部長も同席いたします。",
            "二名の社員のカレンダー同期がまだ正常に動作しておりません。",
            "来週の火曜日か水曜日でしたら都合がよろしいです。",
            "契約書は法務部の確認が完了しました。",
        ),
    ),
    "ru": Locale(
        "ru", "koi8-r", 3, "Re: ", "Fwd: ", "Здравствуйте, {first}!", "С уважением,",
        "{date}, {sender} пишет:", "-------- Пересылаемое сообщение --------",
        {
            "intro": ("Запрос: интеграция CRM для {org}",),
            "pricing": ("Стоимость лицензий на {seats} пользователей",),
            "support": ("Не работает синхронизация календаря",),
            "meeting": ("Встреча на следующей неделе",),
        },
        (
            "Спасибо за быстрый ответ.",
            "Мы обсудили ваше предложение с отделом продаж.",
            "Не могли бы вы прислать подробный прайс на 25 пользователей?",
            "Наш генеральный директор хотел бы присутствовать на следующей встрече.",
            "Синхронизация календаря у двух коллег пока не работает.",
            "Следующий вторник или среда нам вполне подходят.",
            "Договор согласован с юристами, осталось только подписать.",
        ),
    ),
}

ORGS: tuple[OrgSpec, ...] = (
    OrgSpec("Brauhaus Nord GmbH", "brauhaus-nord.example", "de", "beverage", "Hamburg", (
        ("Jürgen Müller", "Jürgen", ("juergen.mueller@brauhaus-nord.example",
                                     "j.mueller@mail.example.net"), "Vertriebsleiter"),
        ("Änne Schäfer", "Änne", ("aenne.schaefer@brauhaus-nord.example",), "Einkauf"),
        ("Björn Weiß", "Björn", ("bjoern.weiss@brauhaus-nord.example",), "IT-Leiter"),
    )),
    OrgSpec("Müller & Söhne Maschinenbau AG", "mueller-soehne.example", "de", "machinery",
            "Stuttgart", (
        ("Stefan Groß", "Stefan", ("s.gross@mueller-soehne.example",), "Geschäftsführer"),
        ("Katharina Öztürk", "Katharina", ("k.oeztuerk@mueller-soehne.example",),
         "Projektleiterin"),
    )),
    OrgSpec("Alpenblick Logistik GmbH", "alpenblick-logistik.example", "de", "logistics",
            "Innsbruck", (
        ("Lukas Hölzl", "Lukas", ("lukas.hoelzl@alpenblick-logistik.example",), "Disposition"),
        ("Sophie Grüner", "Sophie", ("sophie.gruener@alpenblick-logistik.example",
                                     "sophie.gruener@post.example.org"), "Key Account"),
    )),
    OrgSpec("Société Lumière SARL", "lumiere-sarl.example", "fr", "lighting", "Lyon", (
        ("Hélène Dubois", "Hélène", ("helene.dubois@lumiere-sarl.example",),
         "Directrice commerciale"),
        ("François Lefèvre", "François", ("f.lefevre@lumiere-sarl.example",), "Acheteur"),
        ("Amélie Caron", "Amélie", ("amelie.caron@lumiere-sarl.example",), "Juriste"),
    )),
    OrgSpec("Boulangeries Dupont & Fils", "dupont-fils.example", "fr", "food retail", "Nantes", (
        ("Jérôme Bénard", "Jérôme", ("jerome.benard@dupont-fils.example",
                                     "jbenard@courriel.example.net"), "Gérant"),
        ("Chloé Mercier", "Chloé", ("chloe.mercier@dupont-fils.example",), "Comptable"),
    )),
    OrgSpec("Zakłady Wiśniewski Sp. z o.o.", "wisniewski.example", "pl", "manufacturing",
            "Łódź", (
        ("Łukasz Wójcik", "Łukasz", ("lukasz.wojcik@wisniewski.example",), "Dyrektor sprzedaży"),
        ("Małgorzata Zielińska", "Małgorzata", ("m.zielinska@wisniewski.example",), "Księgowa"),
    )),
    OrgSpec("Kraków Software House", "krakowsoft.test", "pl", "software", "Kraków", (
        ("Paweł Krzyżanowski", "Paweł", ("pawel.k@krakowsoft.test",
                                         "pawel.krzyzanowski@poczta.example.org"), "CTO"),
        ("Agnieszka Dąbrowska", "Agnieszka", ("a.dabrowska@krakowsoft.test",), "Office Manager"),
    )),
    OrgSpec("株式会社サクラ精機", "sakura-seiki.example", "ja", "precision tools", "Osaka", (
        ("田中 健一", "Tanaka-san", ("k.tanaka@sakura-seiki.example",), "営業部 部長"),
        ("佐藤 美咲", "Sato-san", ("m.sato@sakura-seiki.example",), "情報システム部"),
    )),
    OrgSpec("東京トレーディング株式会社", "tokyo-trading.test", "ja", "trading", "Tokyo", (
        ("鈴木 一郎", "Suzuki-san", ("ichiro.suzuki@tokyo-trading.test",), "購買課"),
        ("高橋 由美", "Takahashi-san", ("y.takahashi@tokyo-trading.test",), "営業企画"),
    )),
    OrgSpec('ООО "Северная звезда"', "sev-zvezda.example", "ru", "energy", "Санкт-Петербург", (
        ("Дмитрий Смирнов", "Dmitry", ("d.smirnov@sev-zvezda.example",), "Коммерческий директор"),
        ("Екатерина Иванова", "Ekaterina", ("e.ivanova@sev-zvezda.example",), "Главный бухгалтер"),
    )),
    OrgSpec("Acme Widgets Inc.", "acme.example.com", "en", "manufacturing", "Chicago", (
        ("Priya Raman", "Priya", ("priya.raman@acme.example.com",), "VP Sales"),
        ("Tom O'Brien", "Tom", ("tom.obrien@acme.example.com",), "RevOps Manager"),
        ("Rachel Green", "Rachel", ("rgreen@acme.example.com",), "Procurement"),
    )),
    OrgSpec("Globex Corporation", "globex.example.net", "en", "energy", "Houston", (
        ("Hank Scorpio", "Hank", ("hank@globex.example.net",), "CEO"),
        ("Maria García", "Maria", ("maria.garcia@globex.example.net",
                                   "mgarcia@home.example.org"), "Head of Sales Ops"),
    )),
    OrgSpec("Initech LLC", "initech.example.org", "en", "software", "Austin", (
        ("Peter Gibbons", "Peter", ("peter.gibbons@initech.example.org",), "IT Director"),
        ("Samir Nagheenanajar", "Samir", ("samir.n@initech.example.org",), "Engineer"),
    )),
    OrgSpec("Hooli Health", "hooli-health.test", "en", "healthcare", "Boston", (
        ("Chen Wei", "Chen", ("chen.wei@hooli-health.test",), "Director of Partnerships"),
        ("Emily Carter", "Emily", ("emily.carter@hooli-health.test",), "Compliance Officer"),
    )),
    OrgSpec("Umbrella Biotech Ltd", "umbrella-bio.example", "en", "biotech", "Cambridge", (
        ("David Kim", "David", ("david.kim@umbrella-bio.example",), "Commercial Lead"),
        ("Sarah Johnson", "Sarah", ("sarah.johnson@umbrella-bio.example",), "Finance Manager"),
    )),
)

# Bulk senders that are not CRM contacts: (display name, address, list id, subjects, bodies).
NEWSLETTERS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("SaaS Weekly", "noreply@news.saasweekly.example", "saasweekly.news.saasweekly.example",
     ("This week in SaaS: pricing pages that convert", "SaaS Weekly #{num}: churn benchmarks"),
     ("Five teardown examples of pricing pages.", "Benchmarks from 400 B2B companies.")),
    ("CloudHost Billing", "billing-noreply@cloudhost.example.net", "billing.cloudhost.example.net",
     ("Your CloudHost invoice is available", "Payment received - thank you"),
     ("Your monthly invoice is ready in the console.", "We received your payment.")),
    ("LinkedUp", "notifications@linkedup.example", "notifications.linkedup.example",
     ("{name} viewed your profile", "You appeared in {num} searches this week"),
     ("See who is interested in your profile.", "Grow your network with these suggestions.")),
    ("Vertriebskonferenz 2025", "newsletter@vertriebskonferenz.example", "news.vertrieb.example",
     ("Jetzt Frühbucher-Tickets sichern – nur bis Freitag!", "Das Programm für München ist da"),
     ("Über 40 Vorträge rund um Vertrieb und Kundenbindung.", "Treffen Sie Größen der Branche.")),
    ("LaunchDaily", "hello@launchdaily.example.org", "daily.launchdaily.example.org",
     ("🚀 Today's top launches: AI note takers", "🔥 {num} tools your sales team will love"),
     ("The best new products, every day.", "Hand-picked launches from the community.")),
    ("MeetSlot", "no-reply@meetslot.test", "events.meetslot.test",
     ("New event: {name} booked a 30 min call", "Reminder: call with {name} tomorrow"),
     ("A new meeting was scheduled via your booking page.", "Your meeting starts soon.")),
)

# fmt: on

INTERNAL_COLLEAGUES: tuple[tuple[str, str], ...] = (
    ("Sam Patel", "sam"),
    ("Jordan Lee", "jordan"),
)

MAILERS = (
    "Microsoft Outlook 16.0",
    "Apple Mail (2.3774.600.62)",
    "Mozilla Thunderbird 115.8.1",
    "Roundcube Webmail/1.6.5",
    None,
)

# strftime patterns for the "On <date>, <sender> wrote:" line (numeric: locale independent).
DATE_FORMATS = {
    "en": "%Y-%m-%d at %H:%M",
    "de": "%d.%m.%Y um %H:%M",
    "fr": "%d/%m/%Y à %H:%M",
    "pl": "%d.%m.%Y o %H:%M",
    "ja": "%Y年%m月%d日 %H:%M",
    "ru": "%d.%m.%Y в %H:%M",
}

FYI = {
    "en": "FYI, see below. Could you take a look?",
    "de": "zur Info, siehe unten. Können Sie sich das bitte ansehen?",
    "fr": "pour information, voir ci-dessous. Pourriez-vous regarder ?",
    "pl": "do wiadomości, poniżej. Czy mógłby Pan na to spojrzeć?",
    "ja": "ご参考までに、下記をご確認いただけますでしょうか。",
    "ru": "для информации, см. ниже. Посмотрите, пожалуйста.",
}

CONTENT_LANGUAGE = {
    "en": "en-US",
    "de": "de-DE",
    "fr": "fr-FR",
    "pl": "pl-PL",
    "ja": "ja-JP",
    "ru": "ru-RU",
}

TIMEZONES = {
    "en": "America/New_York",
    "de": "Europe/Berlin",
    "fr": "Europe/Paris",
    "pl": "Europe/Warsaw",
    "ja": "Asia/Tokyo",
    "ru": "Europe/Moscow",
}

OWNER_FOLLOW_UPS = (
    "Just bumping this up in case it got buried.",
    "Following up on my note below, happy to jump on a quick call if easier.",
)
