"""How people write the parts of a request: the vocabulary behind `inboxdesk/form_check.py`.

Regular expressions only, kept apart from the logic so that a new way of writing (a new label, a
new organisation type, a new error cue) is a one-line change here. Case-insensitive unless noted.
"""

from __future__ import annotations

import re

_I = re.IGNORECASE
_SEP = r"[ \t:|\-–—=]*"  # never across a line: an empty field is not filled by the next one
_UP, _LO = "А-ЯЁ", "а-яё"
_PATRONYMIC = rf"[{_UP}][{_LO}]+(?:вич|ич|вн|чн)(?:а|у|ем|е|ы|ой)?"  # any case form: Петровны, Ильичу
_WORD = rf"[{_UP}][{_LO}]+(?:-[{_UP}][{_LO}]+)?"
_INITIALS = rf"[{_UP}]\.\s?[{_UP}]\.?"
_ANY = f"{_UP}{_LO}"

# -- people -----------------------------------------------------------------------------------
NAME_PATTERNS = [  # case-sensitive: capitals are what tells a name from ordinary words
    re.compile(rf"\b{_WORD}\s+{_WORD}\s+{_PATRONYMIC}\b"),  # Иванова Мария Петровна
    re.compile(rf"\b[{_UP}][{_LO}]+\s+{_PATRONYMIC}\s+{_WORD}\b"),  # Мария Петровна Иванова
    re.compile(rf"\b{_WORD}\s+{_INITIALS}(?![{_ANY}])"),  # Иванова М.П.
    re.compile(rf"(?<![{_ANY}]){_INITIALS}\s?{_WORD}\b"),  # М.П. Иванова
    re.compile(rf"\b[{_UP}]{{2,}}\s+[{_UP}]{{2,}}\s+[{_UP}]+(?:ВИЧ|ВНА|ЧНА)\b"),  # ИВАНОВА МАРИЯ ПЕТРОВНА
]
# After these labels two or three words are a name in any case ("фио иванов иван иванович").
NAME_LABEL = re.compile(
    r"(?:(?<![а-яёa-z])(?:ф\.?\s?и\.?\s?о\.?(?:\s+(?:заявителя|пользователя|пациента))?|"
    r"заявитель|исполнитель|контактное лицо|от кого)" + _SEP + r"|с уважением,?\s*)"
    rf"([{_ANY}]+(?:-[{_ANY}]+)?(?:[ \t]+[{_ANY}]\.?[ \t]?[{_ANY}]*\.?)(?:[ \t]+[{_ANY}]{{2,}})?)", _I)
NOT_NAME = re.compile(r"^(?:данные|пациент|должность|телефон|тел|логин|организация|мо|отдел|уважением)\b",
                      _I)
# Whose name is it? The nearest of these words before it on its line decides; none: the applicant.
# "врача"/"доктора" (genitive/dative) point at a third party: "к врачу Петрову", "для врача Сидоренко";
# but "заместитель главного врача Иванова" signs the letter. "им. Н.И. Пирогова" names a hospital.
ROLE_CTX = re.compile(
    r"(?P<patient>пациент\w*|больн(?:ой|ого|ая|ую)\b|ребен\w*|ребён\w*)|"
    r"(?P<user>пользовател\w*|сотрудник\w*)|"
    r"(?P<other>(?<!главного )(?:врач[ау]|доктор[ау]|специалист[ау]|медсестр[ыеу]|фельдшер[ау]|"
    r"регистратор[ау])(?:-[а-яё]+)?\b)|(?P<org>\bим\.|\bимени\b)", _I)
POSITION = re.compile(
    r"врач|фельдшер|медсестр|медицинск\w+ сестр|регистратор|заведующ|главн\w+ врач|заместител|статистик|"
    r"оператор|программист|инженер|администратор|акушер|лаборант|провизор|фармацевт|бухгалтер|экономист|"
    r"специалист|начальник|руководител|секретар|должность", _I)

# -- phone ------------------------------------------------------------------------------------
PHONE_LABEL = re.compile(r"(?:телефон\w*|тел\b\.?|т\.|моб\w*\.?|сот\w*\.?|контактн\w+ номер|phone|tel\b)", _I)
PHONE_RUN = re.compile(r"(?<![\w/№.])(\+?\s?[\d(][\d\s\-–()]{3,22}\d)(?![\d.,]\d)")
SNILS = re.compile(r"\d{3}-\d{3}-\d{3}[\s-]\d{2}")
# Numbers that are not phones: the word right before them says so.
NUMBER_CTX = re.compile(r"(?:снилс|инн|огрн|кпп|полис\w*|карт\w*|№|сч[её]т\w*|\bid|oid|элн|\bмк|\bиб)"
                        r"(?:\s+\S+)?\s*[:№]?\s*$", _I)

# -- login ------------------------------------------------------------------------------------
LOGIN_LABEL = re.compile(r"(?:логин\w*|login|уч[её]тн\w+\s+запис\w*|уч\.\s?запис\w*|уч[её]тк\w*|\bуз\b|"
                         r"имя пользователя|пользовател\w*)", _I)
LOGIN_TOKEN = re.compile(r"(?<![\w@.])([A-Za-z0-9][A-Za-z0-9._\-]*[A-Za-z0-9]|[A-Za-z]{2,})(?![\w@])")
LOGIN_STOP = {"mis", "emias", "egisz", "http", "https", "www", "windows", "chrome", "yandex", "firefox",
              "google", "ok", "pdf", "sms", "id", "oid", "epgu", "ora", "login", "email", "e-mail", "mail"}
LOGINS_ATTACHED = re.compile(r"логин\w*\s+(?:\S+\s+){0,2}?(?:в|во)\s+"
                             r"(?:списке|вложени\w*|файле|приложени\w*|таблиц\w*)", _I)
NEGATION = re.compile(r"\bне\b|нет\b|отсутств|забыл|не помн", _I)
# Without a label only the unmistakable shape counts: lower-case Latin joined by "_" or "." (ivanova_mp).
FALLBACK_LOGIN = re.compile(r"(?<![\w@./])([a-z][a-z0-9]*(?:[._][a-z0-9]+)+)(?![\w@/]|\.[a-z])")
FILE_OR_HOST = re.compile(r"\.(?:ru|com|org|net|рф|png|jpe?g|gif|docx?|xlsx?|pdf|zip|rar|7z|exe|txt)$", _I)

# -- organisation -----------------------------------------------------------------------------
ORG = re.compile(r"(?:\b(?:ГБУЗС|ГБУЗ|ГБУ|ГАУЗ|ГКУЗ|ФГБУ|ФГБУЗ|ФКУЗ|ЧУЗ|ООО|АНО)\b|"  # case-sensitive
                 r"\b(?:ГБ|ГП|ДГБ|ДП|ГКБ|ЦРБ|ГДП|СП)\s*№?\s*\d+)")
ORG_WORDS = re.compile(
    r"больниц|поликлиник|амбулатор|диспансер|госпитал|роддом|родильн\w+ дом|перинатальн|санатори|хоспис|"
    r"женск\w+ консультац|фельдшерско-акушерск|\bфап\b|медсанчаст|\bмсч\b|станци\w+ скорой|"
    r"скорой медицинской помощи|центр\w*\s+(?:\w+\s+){0,2}(?:медицин|здоровья|крови|реабилит)", _I)
ORG_LABEL = re.compile(r"(?:медицинская организация|наименование мо|организация|учреждение|место работы|"
                       r"\bмо\b)" + _SEP + r"(\S.{2,})", _I)

# -- steps and the request itself -------------------------------------------------------------
STEPS_LABEL = re.compile(  # a label counts with a value of 3+ words
    r"(?:последовательность\s+(?:выполняемых\s+)?действий|порядок действий|что делаю|шаги)"
    + _SEP + r"([^\s|]+[ \t]+[^\s|]+[ \t]+[^\s|]+)", _I)
STEP_SIGNS = re.compile(
    r"→|->|=>|—>|»\s*>|\s>\s|"
    r"\bпри\s+(?:попытке|записи|открытии|сохранении|формировании|подписании|отправке|входе|выписке|"
    r"создании|добавлении|печати|выгрузке|загрузке|заполнении|нажатии|выборе|переходе|регистрации|"
    r"оформлении|закрытии|просмотре|поиске|передаче|копировании|авторизации|проведении|вводе|смене|"
    r"удалении)\b|"
    r"\b(?:захожу|зашл[аи]|зашел|открываю|открыла?|нажимаю|нажала?|выбираю|выбрала?|перехожу|ввожу|"
    r"ввела?|пытаюсь|пыталась|заполняю|сохраняю|формирую|подписываю|отправляю|записываю|добавляю|"
    r"вхожу)\b", _I)
# `[ \t]*`, never `\s*`, after a multiline `^`: `\s` crosses line ends, so every blank line would
# rescan all the blank lines after it (50,000 of them took a minute; issue 9).
NUMBERED = re.compile(r"^[ \t]*\d[.)][ \t]+\S", re.M)
SERVICE = re.compile(  # a request for an action is its own description ("прошу добавить роль")
    r"\b(?:прошу|просим|просьба|необходимо|нужно|требуется)\s+(?:[\w«»\"-]+\s+){0,3}?"
    r"(?:добавить|создать|удалить|заблокировать|разблокировать|сбросить|предоставить|объединить|"
    r"изменить|исправить|настроить|восстановить|подключить|завести|зарегистрировать|отключить|выдать|"
    r"перенести|аннулировать|открыть|дать|снять|внести|убрать|назначить)", _I)
NEW_ACCOUNT = re.compile(r"(?:созда\w*|завест\w*|заведите|зарегистрир\w*|регистрац\w*)\s+(?:\w+\s+){0,2}?"
                         r"(?:уч[её]тн\w+\s+запис|уч[её]тк|пользовател)", _I)

# -- errors -----------------------------------------------------------------------------------
ERROR = re.compile(r"ошиб(?:к|ок)|\berror\b|exception|\bсбой", _I)
ERROR_LABELS = re.compile(r"описание ошибки|текст ошибки|сообщение об ошибке", _I)
ERROR_LABEL = re.compile(r"(?:описание ошибки|текст ошибки|сообщение об ошибке)" + _SEP + r"(\S.*)", _I)
ERROR_CUE = re.compile(r"ошиб|сообщени|пишет|выда[её]т|выходит|появляется|подробнее", _I)
ERROR_SAYS = re.compile(r"(?:ошиб\w*|сообщени\w*|пишет|выда[её]т|выходит|появляется|подробнее»?)\s*"
                        r"(?::\s*(\S.*)?$|[-–—]\s*(\S+\s+\S+.*)$)", _I | re.M)
# The message retold without quotes: a verb, "ошибка", then at least two words ("ошибки нет",
# "ошибка, протокол не сохраняется" and "не выходит ошибка" do not qualify).
ERROR_RETOLD = re.compile(
    r"(?<!не )(?:выходит|пишет|выда[её]т|появляется)\s+ошибк\w*\s+[а-яёa-z]+\s+[а-яёa-z]+", _I)
QUOTED = re.compile(r"[«\"“'„]([^«»\"“”'„\n]{3,})[»\"”'“]")
TECHNICAL = re.compile(r"[A-Z]\w+(?:Exception|Error)\b|\bORA-\d+|\bHTTP\s?\d{3}\b|\([45]0\d\)")  # case-sens.

# -- the form itself --------------------------------------------------------------------------
# The form's own hints and example (Appendix 1, and our form_incomplete letter that reproduces it):
# a form pasted back unfilled, or quoted under an answer, must not fill anything in.
FORM_HINTS = re.compile(
    r"ФИО,? должность обратившегося,? наименование МО пользователя,? контактный номер телефона;?|"
    r"(?:ФИО пользователя,? )?логин,? под которым воспроизводится ошибка|"
    r"фамилия,? инициалы пациента,? № карты|текст (?:из )?ошибки по кнопке\s*«?подробнее»?|"
    r"(?:пример:|например,)\s*регистратура → расписание стандартное → при записи пациента к врачу-логопеду"
    r"[^\n]*?не существует\)?[\"»]?\.?|"
    r"если проблема связана с формированием счетов[- ]реестров[^\n]*?параметры[^\n]*?"
    r"(?:формирования|т\. ?д)\.|"
    r"приложить скриншоты согласно рекомендациям в п\. 3\.5 регламента|"
    r"приложите к письму в формате JPG, GIF или PNG[^\n]*", _I)
LABEL_ONLY = re.compile(
    r"^\s*(?:данные\s+(?:о\s+)?(?:заявителе|пользователе|пациенте|пациента)|фио\s+\w+|фио|ф\.и\.о\.|логин|"
    r"телефон|должность|организация|описание ошибки|скриншоты?|"
    r"последовательность\s+(?:выполняемых\s+)?действий|фио пользователя,\s*логин)[\s:|\-–—]*$", _I)
LABEL_START = re.compile(r"\s*(?:данные|фио|логин|телефон|последовательность|описание ошибки|скриншот)", _I)
# Words around a description that describe nothing (3.1: "заявка во вложении" is no description).
POINTER = re.compile(r"(?:во|в)\s+вложени\w*|см\.?\s*(?:вложени\w*|видео|файл\w*)|прилага\w*|приложени\w*|"
                     r"подробност\w*|добрый день|здравствуйте|с уважением|заявка|уважаемые коллеги", _I)
SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|ответ|отв|пересл|пересылка|aw|wg)\s*(?:\[\d+\])?\s*:|"
                            r"\[[A-Za-zА-Яа-я]+-\d{4}-\d+\])\s*", _I)
# A title made only of these does not "reflect the essence of the problem" (3.4); the words of our
# own letters' subjects are here too, so that "Re: [HD-…] Заявка требует дополнения" is no title.
GENERIC = {"заявка", "заявку", "заявки", "ошибка", "вопрос", "проблема", "помогите", "помощь", "срочно",
           "обращение", "без", "темы", "тема", "help", "test", "тест", "важно", "срочная", "проблемы",
           "письмо", "в", "на", "стп", "миац", "техподдержка", "техническая", "поддержка", "служба", "для",
           "no", "subject", "требует", "дополнения", "зарегистрирована", "принята", "решена", "закрыта"}
# A title written into the body, e.g. in the answer to a "please add" letter.
TITLE_LINE = re.compile(r"^[ \t]*(?:тема|заголовок)(?:[ \t]+(?:заявки|письма|обращения))?[ \t]*[:\-–—|][ \t]*"
                        r"(\S.{3,})$", _I | re.M)
