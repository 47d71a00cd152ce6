"""The password policy: every path that sets a password (account creation from the API
or the CLI, a password change, the demo load) goes through `check`, via
`accounts.hash_password`.

A password has at least MIN_LENGTH characters, is not one character repeated, not a
run of consecutive digits or keyboard letters, and is not in COMMON (compared without
case), a short list of passwords of ten characters or more that lead published leak
statistics, English and Chinese.
"""

from __future__ import annotations

from .errors import InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 1024

COMMON: frozenset[str] = frozenset("""
1234567890 0123456789 0987654321 9876543210 1111111111 0000000000 1234512345
123456789a a123456789 12345678910 123456789q q123456789 1q2w3e4r5t 1qaz2wsx3edc
qwertyuiop qwertyuiop1 asdfghjkl; asdfghjkl1 zxcvbnm123 qwerty1234 qwerty12345
qwerty123456 1234qwerty 123qweasdzxc qweasdzxc123 1qazxsw23edc zaq12wsx3edc
password12 password123 password1234 password! password1! passw0rd123 p@ssw0rd123
p@ssword123 iloveyou12 iloveyou123 iloveyou1234 princess123 football123 baseball123
superman123 sunshine123 welcome123 welcome1234 letmein123 monkey1234 dragon1234
trustno1234 abc1234567 abcd123456 abcdef1234 abcdefghij abcdefg123 a1b2c3d4e5
administrator admin12345 admin123456 adminadmin root123456 changeme123 test123456
testtest12 qazwsxedc123 qazwsxedcrfv 1q2w3e4r5t6y 1234567890q 1234567890a
woaini1314 woaini520 5201314520 52013145201 1314520520 wangyiwang 11223344556
aaaaaaaaaa 123123123123 1231231231 1212121212 1122334455 6666666666 8888888888
5555555555 7777777777 9999999999 2222222222 3333333333 4444444444 1234554321
147258369a 147258369q 1472583690 3692581470 1357924680 2468013579 a1234567890
zhang123456 wang123456 li12345678 liu123456789 chen123456 woaini123456
iloveyou520 huang123456 zhao123456 qq123456789 qq1234567890 aa123456789
asd123456789 zxc123456789 qwe123456789 abc123456789 asdasdasd1 qweqweqwe1
1234567890abc 0123456789a passwordpassword password2024 password2025 password2026
dispatch123 dispatch2026 pingan123456 pingan2026 zongzhi123 zongzhi2026
""".split())

KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _is_run(text: str) -> bool:
    """Consecutive keys or digits, forwards or backwards (e.g. 3456789012 wraps too)."""
    for row in KEYBOARD_ROWS:
        ring = row * 3
        if text in ring or text[::-1] in ring:
            return True
    return False


def check(password: str, field: str = "password") -> None:
    """Raise InvalidInput(field, …) unless `password` meets the policy."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(field, f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(field, f"must be at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in COMMON or len(set(lowered)) == 1 or _is_run(lowered):
        raise InvalidInput(field, "is a common password; choose one nobody would guess")
