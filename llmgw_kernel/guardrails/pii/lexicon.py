"""Word lists the name and address recognisers read, written from the public structure of
names and addresses (not from any corpus). Every list is stored folded (lower case, no
diacritics, see ``fold.py``) so that text written without diacritics matches the same entries.
"""

from __future__ import annotations

import re


def _words(s: str) -> frozenset[str]:
    return frozenset(w.strip() for w in s.split("|") if w.strip())


#: Vietnamese family names, with diacritics: the common ones cover almost the whole population
#: (Nguyễn alone about 38%), the rest are the frequent smaller clans. A word written with diacritics
#: must match one as written ("Đường" is a street, "Dương" a family); one written without
#: matches folded ("Duong").
VN_SURNAMES = _words(
    "nguyễn|trần|lê|phạm|hoàng|huỳnh|phan|vũ|võ|đặng|bùi|đỗ|hồ|ngô|dương|lý|lương|đinh|trịnh|đoàn|đào|cao|lâm|"
    "mai|tô|hà|trương|tạ|châu|quách|thái|kiều|la|tăng|lưu|chu|vương|triệu|từ|hứa|khúc|mạc|phùng|tiêu|nghiêm|"
    "diệp|giang|ông|lục|quan|âu|đàm|bạch|khổng|thân|tống|trà|ninh|lại|viên|cù|kim|đồng|nông|hầu|hàn|lò|lã|"
    "mẫn|sầm|tôn|vi|yên|ứng|lữ|mã|thạch|danh|sơn|liêu|thẩm|hồng|phí|nhâm|ngân|văn|quang|khuất|mẫu|bồ|"
    "lư|hoa|phó|phương|doãn|khương|lạc|giáp|ôn|mạnh|an|chung|đậu|lục"
)

#: Middle names and common given names (folded) that mark a run of capitals as a Vietnamese name.
VN_MIDDLE_NAMES = _words(
    "van|thi|duc|minh|ngoc|huu|quoc|thanh|xuan|hong|hoang|kim|anh|cong|dinh|bao|gia|tuan|hai|thu|my|khanh|"
    "phuong|quang|trung|thai|viet|nhat|tien|manh|dang|the|tan|phuc|thuy|bich|mai|lan|linh|hoa|huong|nam|long"
)

#: Vietnamese forms of address that precede a name ("anh Tuấn", "chị Lan", "ông Nguyễn Văn A"), written
#: with diacritics: one-syllable ones match as written, or folded only in text without diacritics
#: ("có" is not "cô"); several-word ones match folded.
VN_HONORIFICS = _words(
    "anh|chị|ông|bà|em|cô|chú|bác|thầy|cậu|dì|cụ|bạn|cháu|bé|mợ|dượng|thím|nhân viên|khách hàng|bệnh nhân|"
    "giám đốc|kỹ sư|bác sĩ|luật sư|tiến sĩ|thạc sĩ|người nhận|người gửi|chủ tài khoản|họ tên|tên|tên là|"
    "họ và tên|người liên hệ|đại diện|bên a|bên b|sinh viên|học sinh|giáo viên|chủ hộ|người thuê|người mua|"
    "người bán|khách|con|vợ|chồng|mẹ|bố|ba|má|chị gái|anh trai|em gái|em trai|đồng nghiệp|trưởng phòng"
)
#: The strongest: whatever capitalised words follow are a name.
NAME_FIELDS = _words(
    "ho ten|ho va ten|ten la|ten toi la|ten em la|ten minh la|toi ten|em ten|minh ten|my name is|my name's|"
    "full name|name is|name|ten|ho ten khach hang|account holder|cardholder|card holder|chu tai khoan|chu the|"
    "contact person|contact name|attn|attention|recipient|sender|payee|beneficiary|customer name|patient name|"
    "nguoi nhan|nguoi gui|nguoi lien he|nguoi dai dien|nguoi thu huong|toi la|em la|minh la|tui la|to la|"
    "day la|chau la|con la"
)

#: English forms of address and the phrases that introduce a name.
EN_TITLES = _words("mr|mrs|ms|miss|mx|dr|prof|sir|dame|madam|mister|lord|lady|rev|capt|sgt|officer|judge")
EN_INTRODUCERS = _words(
    "my name is|my name's|name is|i am|i'm|im|this is|it's|its|name|full name|customer|client|patient|"
    "employee|tenant|applicant|candidate|contact|signed|regards|cheers|thanks|sincerely|from|to|dear|hi|hello|"
    "hey|attn|attention|recipient|sender|account holder|cardholder|beneficiary|for|with|by|called|named|"
    "student|user|guest|passenger|colleague|manager|assistant|ask|cc|contact person|next of kin|spouse|"
    "wife|husband|son|daughter|mother|father|mom|dad|brother|sister|friend|boss|doctor|nurse|lawyer"
)

#: Given names common in English-language text (English-speaking, European, South and East Asian,
#: Hispanic, Arabic); a capitalised word after one of these is read as a family name.
EN_GIVEN_NAMES = _words(
    "james|john|robert|michael|william|david|richard|joseph|thomas|charles|christopher|daniel|matthew|anthony|"
    "mark|donald|steven|paul|andrew|joshua|kenneth|kevin|brian|george|timothy|ronald|edward|jason|jeffrey|ryan|"
    "jacob|gary|nicholas|eric|jonathan|stephen|larry|justin|scott|brandon|benjamin|samuel|gregory|alexander|"
    "frank|patrick|raymond|jack|dennis|jerry|tyler|aaron|jose|adam|nathan|henry|douglas|zachary|peter|kyle|"
    "ethan|walter|noah|jeremy|christian|keith|roger|terry|gerald|harold|sean|austin|carl|arthur|lawrence|dylan|"
    "jesse|jordan|bryan|billy|joe|bruce|gabriel|logan|albert|willie|alan|juan|wayne|elijah|randy|roy|vincent|"
    "ralph|eugene|russell|bobby|mason|philip|louis|liam|oliver|lucas|leo|oscar|harry|charlie|freddie|alfie|"
    "archie|theo|isaac|max|tom|tim|ben|sam|dan|mike|chris|matt|nick|alex|rob|bob|bill|will|jim|tony|steve|"
    "mary|patricia|jennifer|linda|elizabeth|barbara|susan|jessica|sarah|karen|lisa|nancy|betty|margaret|sandra|"
    "ashley|kimberly|emily|donna|michelle|carol|amanda|dorothy|melissa|deborah|stephanie|rebecca|sharon|laura|"
    "cynthia|kathleen|amy|angela|shirley|anna|brenda|pamela|emma|nicole|helen|samantha|katherine|christine|"
    "debra|rachel|carolyn|janet|catherine|maria|heather|diane|ruth|julie|olivia|joyce|virginia|victoria|kelly|"
    "lauren|christina|joan|evelyn|judith|megan|andrea|cheryl|hannah|jacqueline|martha|gloria|teresa|ann|sara|"
    "madison|frances|kathryn|janice|jean|abigail|alice|judy|sophia|grace|denise|amber|doris|marilyn|danielle|"
    "beverly|isabella|theresa|diana|natalie|brittany|charlotte|marie|kayla|alexis|lori|ava|mia|amelia|harper|"
    "ella|chloe|lily|zoe|ellie|ruby|isla|poppy|sophie|lucy|jane|kate|katie|claire|fiona|eleanor|holly|jade|"
    "priya|raj|rahul|amit|anil|sunil|vijay|arjun|aarav|vivek|deepak|ravi|sanjay|anjali|pooja|neha|sneha|kavya|"
    "aditi|divya|meera|lakshmi|sita|arun|kumar|krishna|rohan|ananya|ishaan|nikhil|suresh|ramesh|ganesh|"
    "wei|li|ming|jun|hui|yan|xin|lei|jing|chen|hao|yu|mei|ling|hiroshi|takashi|yuki|haruto|sakura|kenji|akira|"
    "min-jun|ji-woo|seo-yeon|hyun|jin|soo|carlos|luis|miguel|jorge|pedro|alejandro|diego|javier|fernando|"
    "sofia|lucia|valentina|camila|isabel|carmen|elena|pablo|mateo|santiago|ahmed|mohammed|muhammad|ali|omar|"
    "hassan|fatima|aisha|layla|yusuf|ibrahim|khalid|mustafa|hans|klaus|jurgen|stefan|lukas|felix|anja|katrin|"
    "pierre|jean-luc|francois|marie-claire|camille|julien|antoine|giulia|marco|luca|giuseppe|francesca|olga|"
    "ivan|dmitri|sergei|natasha|anastasia|ingrid|lars|erik|sven|astrid|freya|sean|siobhan|niamh|aoife|connor|"
    "declan|marcus|jasmine|tyrone|jamal|keisha|aaliyah|darnell|maya|leah|nora|hazel|violet|aurora|stella|"
    "nina|vera|iris|rosa|rose|clara|eva|ada|ivy|jay|ray|lee|kim|dana|casey|riley|morgan|taylor|jamie|robin|"
    "sam|pat|chris|terry|jordan|quinn|avery|peyton|cameron|drew|blake|reese|hayden|emerson|rowan|sage|ellis|"
    # more of the world's common given names (West and East African, Turkish, Slavic, Nordic, Iberian,
    # South and Southeast Asian, Persian, Hebrew)
    "kwame|kofi|ama|akua|yaw|chinedu|chioma|ngozi|emeka|oluwaseun|tunde|ade|adaeze|amara|nkechi|fatou|aminata|"
    "moussa|mamadou|abdoulaye|zainab|halima|wanjiru|wanjiku|kamau|otieno|thabo|sipho|nomvula|lerato|themba|"
    "mehmet|ahmet|mustafa|elif|zeynep|emre|burak|ayse|fatma|murat|hakan|selin|deniz|tomasz|piotr|krzysztof|"
    "agnieszka|katarzyna|malgorzata|pawel|michal|jakub|wojciech|petr|pavel|jiri|lucie|tereza|andrei|"
    "alexandru|ioana|mihai|bogdan|vlad|nikola|milan|dragan|jelena|ana|marija|ivana|luka|matej|bjorn|nils|"
    "magnus|henrik|kari|ingeborg|sigrid|mikko|jukka|aino|joao|tiago|goncalo|ines|beatriz|rafael|raul|sergio|"
    "andres|alberto|manuel|antonio|francisco|rosa|pilar|dolores|guadalupe|ximena|satya|sundar|lakshman|venkat|"
    "srinivas|prakash|rajesh|mahesh|naveen|harish|kiran|deepa|shreya|swati|nisha|rekha|asha|farhan|imran|"
    "bilal|ayesha|sana|hina|nadia|reza|ali|mohsen|parisa|shirin|dariush|yosef|moshe|avi|noa|tamar|yael|"
    "somchai|suda|niran|anong|putri|budi|agus|dewi|siti|wayan|jose|maricel|rodrigo|cristina|jasmine|angelo|"
    "hyun-woo|min-seo|ji-hoon|seo-jun|yuna|hana|haruki|sota|ren|aoi|hina|riku|yuto|xiaoming|xiaoli|zhiwei|"
    "jianguo|guang|ying|fang|qiang"
)

#: Words right before a slot a person fills ("a letter for …", "send it to …", "met with …"): two or
#: three name-shaped capitalised words after one are read as a name even when the given name is
#: not in ``EN_GIVEN_NAMES`` (score 0.6), unless they hold a word of ``EN_PROPER_WORDS``.
EN_PERSON_SLOTS = _words(
    "for|with|cc|ask|asked|tell|told|thank|thanks|contact|contacted|call|called|email|emailed|"
    "message|ping|invite|invited|meet|met|hire|hired|named|says|said|wrote|attn|"
    "colleague|manager|employee|customer|client|patient|tenant|applicant|candidate|student|doctor|lawyer|"
    "wife|husband|son|daughter|mother|father|brother|sister|friend|boss|neighbour|neighbor|landlord|"
    "assign|assigned|reassign|notify|remind|introduce|introducing|welcome|congratulate"
)
#: Capitalised words that make a run a place, an organisation or a product, not a person.
EN_PROPER_WORDS = _words(
    "new|san|los|las|saint|north|south|east|west|upper|lower|great|united|national|international|global|"
    "google|microsoft|apple|amazon|meta|facebook|twitter|slack|zoom|teams|office|cloud|azure|windows|linux|"
    "python|java|rust|street|road|avenue|park|lake|river|mount|hotel|airport|university|college|hospital|"
    "airlines|airways|group|inc|company|corporation|corp|department|ministry|city|county|state|republic|"
    "kingdom|america|american|europe|european|asia|asian|africa|african|english|french|german|chinese|"
    "japanese|vietnamese|christmas|easter|project|product|support|service|services|sales|marketing|finance|"
    "legal|engineering|data|api|app|web|mobile|android|ios|iphone|ipad|mac|chrome|firefox|safari|github|"
    "gitlab|docker|kubernetes|openai|anthropic|claude|gpt|chatgpt|gemini|llama|mistral|excel|word|powerpoint|"
    "outlook|gmail|drive|sheets|docs|notion|jira|confluence|salesforce|stripe|paypal|visa|mastercard|uber|"
    "grab|shopee|lazada|tiki|momo|zalo|viettel|vingroup|fpt|vnpt|mobifone|bank|capital|partners|holdings|"
    "foundation|institute|center|centre|club|council|committee|agency|bureau|times|post|news|journal|review|"
    "studio|studios|labs|systems|solutions|technologies|tech|software|store|market|mall|plaza|tower|"
    "building|hall|house|school|academy|museum|library|station|port|bay|island|beach|valley|hill|hills|"
    "york|jersey|london|paris|tokyo|berlin|sydney|hanoi|saigon|singapore|bangkok|seoul|beijing|shanghai|"
    "guide|manual|handbook|policy|terms|conditions|privacy|notice|report|summary|overview|introduction|"
    "chapter|section|part|appendix|table|figure|step|phase|stage|version|release|edition|series|season|"
    "episode|vol|volume|no|number|model|pro|max|plus|mini|ultra|lite|edge|prime|premium|free|gold|silver"
)

#: Capitalised words that follow a given name without being a family name (days, months, pronouns…).
EN_NOT_SURNAMES = _words(
    "i|the|a|an|and|or|but|to|of|in|on|at|by|for|from|with|is|was|are|be|if|so|as|it|we|you|he|she|they|my|"
    "our|your|his|her|their|this|that|monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|"
    "february|march|april|may|june|july|august|september|october|november|december|street|st|road|rd|avenue|"
    "ave|inc|ltd|llc|corp|co|group|bank|university|hospital|school|team|please|thanks|hi|hello|dear|ok|yes|no|"
    # values and types that follow "name:" / "name is" in code and configuration
    "none|true|false|null|nil|undefined|annotated|optional|list|dict|any|str|string|int|float|bool|object|array|"
    "self|type|class|field|default|value|key|id|name|new|return|error|exception|test|example|sample|user|admin|"
    "root|unknown|tbd|todo|required|literal|union|sequence|mapping|callable|path|none"
)

#: Capitalised words that start a Vietnamese place name rather than a personal name: provinces and
#: large cities are matched whole (``VN_PLACES``); these stop a name where they begin.
VN_PLACES = _words(
    "ha noi|hanoi|ho chi minh|tp hcm|tphcm|hcm|sai gon|saigon|da nang|hai phong|can tho|hue|thua thien hue|"
    "an giang|ba ria|vung tau|ba ria vung tau|bac giang|bac kan|bac lieu|bac ninh|ben tre|binh dinh|"
    "binh duong|binh phuoc|binh thuan|ca mau|cao bang|dak lak|dak nong|dien bien|dong nai|dong thap|gia lai|"
    "ha giang|ha nam|ha tinh|hai duong|hau giang|hoa binh|hung yen|khanh hoa|kien giang|kon tum|lai chau|"
    "lam dong|lang son|lao cai|long an|nam dinh|nghe an|ninh binh|ninh thuan|phu tho|phu yen|quang binh|"
    "quang nam|quang ngai|quang ninh|quang tri|soc trang|son la|tay ninh|thai binh|thai nguyen|thanh hoa|"
    "tien giang|tra vinh|tuyen quang|vinh long|vinh phuc|yen bai|nha trang|da lat|vinh|buon ma thuot|pleiku|"
    "quy nhon|phu quoc|ha long|thu duc|viet nam|vietnam|hong kong|ma cao|macau|tay nguyen|mien tay"
)

#: Words before a capitalised name that make it a street, a school, a place — not a person
#: ("đường Lê Lợi", "trường Nguyễn Du", "quận Hai Bà Trưng"), matched folded.
VN_PLACE_PREFIXES = _words(
    "duong|pho|d|ql|tl|ngo|hem|kiet|quan|huyen|phuong|xa|tinh|thanh pho|tp|thi xa|thi tran|tx|tt|p|q|h|"
    "truong|benh vien|bv|cong vien|quang truong|san bay|ga|bao tang|nha van hoa|khu|kp|thon|ap|xom|lang|"
    "chung cu|toa|toa nha|cong ty|tap doan|ngan hang|trung tam|hoc vien|dai hoc|thcs|thpt|tieu hoc|mam non|"
    "nha tho|street|st|road|avenue|ave|boulevard|blvd|district|ward|city|province|khach san|hotel|nha hang|"
    "chi nhanh|van phong|cua hang|sieu thi|nha may|xi nghiep|cong trinh|du an|khu do thi|tuyen pho|tuyen duong"
)

_SYLLABLE = re.compile(
    r"(?:ngh|ng|gh|gi|kh|nh|ph|qu|th|tr|ch|[bcdghklmnprstvx])?"
    r"(?:uye|uya|uyu|oai|oay|oeo|uay|uoi|uou|ieu|yeu|ai|ao|au|ay|eo|eu|ia|ie|iu|oa|oe|oi|oo|ua|ue|ui|uo|uu|uy|ye|"
    r"a|e|i|o|u|y)"
    r"(?:nh|ng|ch|[cmnpt])?"
)


def vn_syllable(folded_word: str) -> bool:
    """True if a folded word has the shape of one Vietnamese syllable (initial, rhyme, final).

    >>> [vn_syllable(w) for w in ("nguyen", "thi", "ngoc", "you", "smith")]
    [True, True, True, False, False]
    """
    return _SYLLABLE.fullmatch(folded_word) is not None
