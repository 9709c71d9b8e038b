"""Which changes after a signature are acceptable (pyHanko's difference analysis).

pyHanko's default policy: later revisions may add signatures, fill form fields, add the DSS and
document time-stamps, and (per DocMDP) annotations; anything else touching page content makes
the earlier signature's coverage "suspicious", reported as a failure of that signature.
"""

from __future__ import annotations

from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY

DIFF_POLICY = DEFAULT_DIFF_POLICY
