# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Attributes shared by modules of the same kind (extends_documentation_fragment: aistack.infra.attributes.<kind>)."""

    # A fragment must have DOCUMENTATION; the kinds below are what modules use.
    DOCUMENTATION = r"""
options: {}
"""

    # Modules that only read (the *_info and *_health modules): never a change, full check mode.
    INFO_MODULE = r"""
attributes:
  check_mode:
    description: Runs normally in check mode (it only reads).
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  idempotent:
    description: Never reports a change.
    support: full
"""
