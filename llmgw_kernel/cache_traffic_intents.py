"""Hand-written intents for semantic-cache traffic (:mod:`llmgw_kernel.cache_traffic`).

Each :class:`Intent` is one question with its own answer and 2-4 phrasings; the first phrasing
is the canonical one. A *hard negative* names the intent it is designed to be confused with
(``negative_of``) and how (``trap``):

- ``order``: the same words in the other direction ("Celsius to Fahrenheit" / "Fahrenheit to Celsius");
- ``negation``: with / without, safe / not safe;
- ``number``: the same sentence with a different number ("7 times 8" / "7 times 9");
- ``entity``: a different named entity ("Austria" / "Australia");
- ``word``: one content word swapped for its opposite or a sibling (ascending / descending, cancel /
  renew). The cache's verification has no rule for these: only the threshold keeps them apart.

Paraphrases keep numbers, negations and capitalised names identical to their canonical
phrasing on purpose (so that the verification rules accept them); a few use quite different
wording, so that some paraphrases stay below any sensible threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

TRAPS = ("order", "negation", "number", "entity", "word")


@dataclass(frozen=True)
class Intent:
    id: str
    domain: str
    prompts: tuple[str, ...]
    answer: str
    negative_of: str | None = None
    trap: str | None = None


def _i(id: str, domain: str, prompts: tuple[str, ...], answer: str, negative_of: str | None = None,
       trap: str | None = None) -> Intent:  # fmt: skip
    return Intent(id, domain, prompts, answer, negative_of, trap)


# fmt: off
INTENTS: tuple[Intent, ...] = (
    # -- conversions ---------------------------------------------------------------------------
    _i("c-to-f", "conversion", (
        "How do I convert Celsius to Fahrenheit?",
        "What's the formula to convert Celsius to Fahrenheit?",
        "How can I convert a temperature from Celsius to Fahrenheit?",
    ), "Multiply the Celsius value by 9/5 and add 32: F = C x 9/5 + 32. For example 20 C is 68 F."),
    _i("f-to-c", "conversion", (
        "How do I convert Fahrenheit to Celsius?",
        "What's the formula to convert Fahrenheit to Celsius?",
        "How can I convert a temperature from Fahrenheit to Celsius?",
    ), "Subtract 32 from the Fahrenheit value and multiply by 5/9: C = (F - 32) x 5/9. For example 68 F is 20 C.",
       "c-to-f", "order"),
    _i("km-in-miles", "conversion", (
        "Convert 10 kilometers to miles.",
        "What is 10 kilometers in miles?",
        "How far is 10 kilometers in miles?",
    ), "10 kilometers is about 6.21 miles (1 km = 0.621 mi)."),
    _i("miles-in-km", "conversion", (
        "Convert 10 miles to kilometers.",
        "What is 10 miles in kilometers?",
        "How far is 10 miles in kilometers?",
    ), "10 miles is about 16.09 kilometers (1 mi = 1.609 km).", "km-in-miles", "order"),
    _i("cups-2-ml", "conversion", (
        "How many milliliters are in 2 cups?",
        "Convert 2 cups to milliliters.",
        "2 cups is how many milliliters?",
    ), "2 US cups are about 473 milliliters (1 cup = 236.6 ml)."),
    _i("cups-3-ml", "conversion", (
        "How many milliliters are in 3 cups?",
        "Convert 3 cups to milliliters.",
    ), "3 US cups are about 710 milliliters (1 cup = 236.6 ml).", "cups-2-ml", "number"),
    _i("kg-to-lb", "conversion", (
        "How many pounds is 5 kilograms?",
        "Convert 5 kilograms to pounds.",
        "What is 5 kilograms in pounds?",
    ), "5 kilograms is about 11.02 pounds (1 kg = 2.2046 lb)."),
    # -- geography and facts -------------------------------------------------------------------
    _i("capital-austria", "geography", (
        "What is the capital of Austria?",
        "What's the capital city of Austria?",
        "Which city is the capital of Austria?",
    ), "Vienna is the capital of Austria."),
    _i("capital-australia", "geography", (
        "What is the capital of Australia?",
        "What's the capital city of Australia?",
        "Which city is the capital of Australia?",
    ), "Canberra is the capital of Australia (not Sydney, which is the largest city).", "capital-austria", "entity"),
    _i("capital-slovenia", "geography", (
        "What is the capital of Slovenia?",
        "Which city is the capital of Slovenia?",
    ), "Ljubljana is the capital of Slovenia."),
    _i("capital-slovakia", "geography", (
        "What is the capital of Slovakia?",
        "Which city is the capital of Slovakia?",
    ), "Bratislava is the capital of Slovakia.", "capital-slovenia", "entity"),
    _i("longest-river", "geography", (
        "What is the longest river in the world?",
        "Which river is the longest in the world?",
        "What's the longest river on the planet?",
    ), "The Nile, about 6,650 km long, is usually listed as the longest river; the Amazon is a close rival."),
    _i("tallest-mountain", "geography", (
        "What is the tallest mountain in the world?",
        "Which mountain is the highest in the world?",
        "What's the highest mountain on the planet?",
    ), "Mount Everest, 8,849 m above sea level, is the highest mountain on Earth."),
    _i("boiling-point", "science", (
        "What is the boiling point of water?",
        "At what temperature does water boil?",
        "What temperature does water boil at?",
    ), "Water boils at 100 C (212 F) at sea level; lower at altitude."),
    _i("freezing-point", "science", (
        "What is the freezing point of water?",
        "At what temperature does water freeze?",
    ), "Water freezes at 0 C (32 F) at normal pressure.", "boiling-point", "word"),
    _i("speed-of-light", "science", (
        "What is the speed of light?",
        "How fast does light travel?",
        "What's the speed of light in a vacuum?",
    ), "Light travels at 299,792,458 metres per second in a vacuum, about 300,000 km/s."),
    _i("speed-of-sound", "science", (
        "What is the speed of sound?",
        "How fast does sound travel?",
    ), "Sound travels at about 343 metres per second in dry air at 20 C.", "speed-of-light", "word"),
    _i("sky-blue", "science", (
        "Why is the sky blue?",
        "Why does the sky look blue?",
        "What makes the sky blue?",
    ), "Air molecules scatter short blue wavelengths of sunlight much more than red ones (Rayleigh scattering)."),
    _i("photosynthesis", "science", (
        "Explain photosynthesis in simple terms.",
        "Can you explain photosynthesis simply?",
        "What is photosynthesis, in simple words?",
    ), "Plants use sunlight to turn water and carbon dioxide into sugar, releasing oxygen as a by-product."),
    _i("ww2-end", "history", (
        "When did World War 2 end?",
        "What year did World War 2 end?",
        "In which year did the Second World War end?",  # no number: verification will refuse it
    ), "World War 2 ended in 1945: in Europe on 8 May, in Asia on 2 September."),
    _i("ww1-end", "history", (
        "When did World War 1 end?",
        "What year did World War 1 end?",
    ), "World War 1 ended with the armistice of 11 November 1918.", "ww2-end", "number"),
    _i("moon-landing", "history", (
        "When did humans first land on the Moon?",
        "What year was the first Moon landing?",
        "When was the first crewed Moon landing?",
    ), "Apollo 11 landed on the Moon on 20 July 1969."),
    # -- math ----------------------------------------------------------------------------------
    _i("mul-7-8", "math", (
        "What is 7 times 8?",
        "What's 7 multiplied by 8?",
        "Calculate 7 times 8.",
    ), "7 x 8 = 56."),
    _i("mul-7-9", "math", (
        "What is 7 times 9?",
        "What's 7 multiplied by 9?",
        "Calculate 7 times 9.",
    ), "7 x 9 = 63.", "mul-7-8", "number"),
    _i("sqrt-144", "math", (
        "What is the square root of 144?",
        "Calculate the square root of 144.",
        "What's the square root of 144?",
    ), "The square root of 144 is 12."),
    _i("sqrt-169", "math", (
        "What is the square root of 169?",
        "Calculate the square root of 169.",
    ), "The square root of 169 is 13.", "sqrt-144", "number"),
    _i("pct-15-of-80", "math", (
        "What is 15% of 80?",
        "Calculate 15 percent of 80.",
        "How much is 15 percent of 80?",
    ), "15% of 80 is 12."),
    _i("pct-20-of-80", "math", (
        "What is 20% of 80?",
        "Calculate 20 percent of 80.",
    ), "20% of 80 is 16.", "pct-15-of-80", "number"),
    _i("prime-97", "math", (
        "Is 97 a prime number?",
        "Is 97 prime?",
        "Check whether 97 is a prime number.",
    ), "Yes, 97 is prime: it has no divisor between 2 and 9."),
    _i("prime-91", "math", (
        "Is 91 a prime number?",
        "Is 91 prime?",
    ), "No, 91 is not prime: 91 = 7 x 13.", "prime-97", "number"),
    # -- coding --------------------------------------------------------------------------------
    _i("py-reverse-list", "coding", (
        "How do I reverse a list in Python?",
        "How can I reverse a list in Python?",
        "What's the way to reverse a Python list?",
    ), "Use xs.reverse() to reverse in place, or xs[::-1] / list(reversed(xs)) for a reversed copy."),
    _i("py-sort-desc", "coding", (
        "How do I sort a list in descending order in Python?",
        "How can I sort a Python list in descending order?",
    ), "Use sorted(xs, reverse=True) for a new list, or xs.sort(reverse=True) in place."),
    _i("py-sort-asc", "coding", (
        "How do I sort a list in ascending order in Python?",
        "How can I sort a Python list in ascending order?",
    ), "Use sorted(xs) for a new list, or xs.sort() in place; ascending is the default.",
       "py-sort-desc", "word"),
    _i("js-dedupe", "coding", (
        "How do I remove duplicates from an array in JavaScript?",
        "How can I remove duplicate values from a JavaScript array?",
        "What's the easiest way to dedupe an array in JavaScript?",
    ), "Spread a Set: const unique = [...new Set(arr)]; it keeps the first occurrence of each value."),
    _i("git-undo-commit", "coding", (
        "How do I undo the last git commit?",
        "How can I undo my last commit in git?",
        "How to revert the most recent git commit?",
    ), "git reset --hard HEAD~1 drops the last commit and its changes; git revert HEAD undoes it with a new commit."),
    _i("git-undo-commit-keep", "coding", (
        "How do I undo the last git commit without losing my changes?",
        "How can I undo my last commit in git without losing the changes?",
    ), "git reset --soft HEAD~1 removes the last commit and keeps its changes staged.",
       "git-undo-commit", "negation"),
    _i("sql-count-rows", "coding", (
        "How do I count the rows in a SQL table?",
        "How can I count the number of rows in a SQL table?",
        "What SQL query counts the rows in a table?",
    ), "SELECT COUNT(*) FROM table_name; add a WHERE clause to count only some rows."),
    _i("http-404", "coding", (
        "What does HTTP status 404 mean?",
        "What is an HTTP 404 error?",
        "Explain the HTTP 404 status code.",
    ), "404 Not Found: the server has nothing at that URL (a wrong path, or a deleted page)."),
    _i("http-403", "coding", (
        "What does HTTP status 403 mean?",
        "What is an HTTP 403 error?",
    ), "403 Forbidden: the server understood the request but refuses it (you are not allowed).", "http-404", "number"),
    _i("install-python-windows", "coding", (
        "How do I install Python on Windows?",
        "How can I install Python on Windows?",
        "What's the best way to install Python on Windows?",
    ), "Download the installer from python.org, tick 'Add python.exe to PATH' and run it; or use winget."),
    _i("install-python-mac", "coding", (
        "How do I install Python on a Mac?",
        "How can I install Python on a Mac?",
    ), "Use the python.org macOS installer, or Homebrew: brew install python.", "install-python-windows", "entity"),
    _i("flight-london-paris", "travel", (
        "How long is the flight from London to Paris?",
        "How long does it take to fly from London to Paris?",
    ), "About 1 hour 15 minutes in the air; allow 3 to 4 hours door to door."),
    _i("flight-london-berlin", "travel", (
        "How long is the flight from London to Berlin?",
        "How long does it take to fly from London to Berlin?",
    ), "About 1 hour 50 minutes in the air.", "flight-london-paris", "entity"),
    _i("regex-email", "coding", (
        "Write a regex that matches an email address.",
        "Give me a regular expression that matches email addresses.",
    ), r"A practical pattern: ^[^@\s]+@[^@\s]+\.[^@\s]+$ (full RFC 5322 validation is not worth it)."),
    # -- cooking, health and safety -------------------------------------------------------------
    _i("coffee-sugar", "food", (
        "How many calories are in a cup of coffee with sugar?",
        "How many calories does a cup of coffee with sugar have?",
        "Calories in a cup of coffee with sugar?",
    ), "About 35-50 kcal with two teaspoons of sugar; the sugar is nearly all of it."),
    _i("coffee-no-sugar", "food", (
        "How many calories are in a cup of coffee without sugar?",
        "How many calories does a cup of coffee without sugar have?",
        "Calories in a cup of coffee without sugar?",
    ), "About 2 kcal: black coffee is almost calorie-free.", "coffee-sugar", "negation"),
    _i("egg-soft", "food", (
        "How long should I boil an egg for a soft yolk?",
        "How long do I boil an egg to get a soft yolk?",
        "Boiling time for an egg with a soft yolk?",
    ), "About 6 to 7 minutes in boiling water, then into cold water to stop the cooking."),
    _i("egg-hard", "food", (
        "How long should I boil an egg for a hard yolk?",
        "How long do I boil an egg to get a hard yolk?",
    ), "About 10 to 12 minutes in boiling water, then cool it in cold water so it peels easily.",
       "egg-soft", "word"),
    _i("microwave-empty-safe", "safety", (
        "Is it safe to run a microwave empty?",
        "Can I safely run a microwave when it is empty?",
    ), "No: with nothing to absorb the energy, an empty microwave can damage its magnetron."),
    _i("microwave-empty-unsafe", "safety", (
        "Why is it not safe to run a microwave empty?",
        "Why is running a microwave empty not safe?",
    ), "The microwaves have nothing to absorb them, so they reflect back into the magnetron and overheat it.",
       "microwave-empty-safe", "negation"),
    _i("ibuprofen-food", "health", (
        "Should I take ibuprofen with food?",
        "Is it better to take ibuprofen with food?",
    ), "Yes, taking ibuprofen with food or milk lowers the risk of an upset stomach."),
    _i("ibuprofen-no-food", "health", (
        "Can I take ibuprofen without food?",
        "Is it okay to take ibuprofen without food?",
    ), "An occasional dose without food is usually fine, but it may upset your stomach; ask a pharmacist.",
       "ibuprofen-food", "negation"),
    # -- product support (a fictional app) -----------------------------------------------------
    _i("reset-password", "product", (
        "How do I reset my password?",
        "How can I reset my account password?",
        "I forgot my password, how do I reset it?",
    ), "Click 'Forgot password' on the sign-in page; we email you a reset link valid for 30 minutes."),
    _i("change-email", "product", (
        "How do I change my email address?",
        "How can I update the email address on my account?",
    ), "Go to Settings > Account > Email, enter the new address and confirm it from the message we send."),
    _i("cancel-subscription", "product", (
        "How do I cancel my subscription?",
        "How can I cancel my subscription?",
        "What are the steps to cancel my subscription?",
    ), "Go to Settings > Billing > Cancel subscription; you keep access until the end of the paid period."),
    _i("renew-subscription", "product", (
        "How do I renew my subscription?",
        "How can I renew my subscription?",
    ), "Go to Settings > Billing > Renew; renewals are charged to the card on file.",
       "cancel-subscription", "word"),
    _i("upgrade-pro", "product", (
        "How do I upgrade to the Pro plan?",
        "How can I upgrade my account to the Pro plan?",
    ), "Open Settings > Billing > Change plan and pick Pro; the price difference is prorated."),
    _i("downgrade-pro", "product", (
        "How do I downgrade from the Pro plan?",
        "How can I downgrade my account from the Pro plan?",
    ), "Open Settings > Billing > Change plan and pick Free; Pro features stay until the period ends.",
       "upgrade-pro", "word"),
    _i("export-csv", "product", (
        "How do I export my data to CSV?",
        "Can I export my data as a CSV file?",
        "How can I export my data to a CSV file?",
    ), "Open Reports, choose the date range and click Export > CSV; large exports arrive by email."),
    _i("refund-policy", "product", (
        "What is your refund policy?",
        "Can I get a refund?",
        "How do refunds work?",
    ), "You can ask for a full refund within 14 days of a charge from Settings > Billing > Refunds."),
    # -- writing -------------------------------------------------------------------------------
    _i("haiku-autumn", "writing", (
        "Write a haiku about autumn rain.",
        "Compose a haiku about autumn rain.",
    ), "Cold rain on red leaves / the gutters hum a low song / the street smells of earth"),
    _i("haiku-spring", "writing", (
        "Write a haiku about spring rain.",
        "Compose a haiku about spring rain.",
    ), "Soft rain on new shoots / the garden drinks in silence / a blackbird answers", "haiku-autumn", "word"),
)
# fmt: on

BY_ID: dict[str, Intent] = {i.id: i for i in INTENTS}
