"""TOTP codes from an independent implementation (pyotp), for tests/api/mfa.rs.

stdin: JSON {"secret": base32, "uri": otpauth URI, "times": [unix seconds, ...]}
Checks that the otpauth:// URI parses to the same secret and parameters (SHA-1, 6 digits, 30 s), then prints a
JSON list of the codes at the given times.
"""
import json
import sys

import pyotp

case = json.load(sys.stdin)
parsed = pyotp.parse_uri(case["uri"])
assert parsed.secret == case["secret"], (parsed.secret, case["secret"])
assert parsed.digits == 6 and parsed.interval == 30, (parsed.digits, parsed.interval)
assert parsed.digest().name == "sha1", parsed.digest().name
totp = pyotp.TOTP(case["secret"])
print(json.dumps([totp.at(t) for t in case["times"]]))
