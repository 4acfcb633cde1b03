#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: milvus_user
short_description: Ensure a Milvus user and its password (root's included)
version_added: 0.1.0
description:
  - Makes O(user_password) the password of user O(name), creating the user when it does not exist;
    or removes the user with O(state=absent).
  - Milvus never shows a password, so the module logs in as O(name) with O(user_password) - when that
    works, there is nothing to do. Otherwise, when O(previous_password) logs in, the user changes its
    own password from it (how root's password is set on a new server, whose root password is Milvus'
    default C(Milvus)). A user that does not exist is created through the connection's own login
    (O(token), or O(user) and O(password)), which must be allowed to manage users.
  - A user that exists but has neither password is a failure that names what to do; nothing is changed.
  - The passwords are never shown, in the result, the diff or a message.
author:
  - aistack.infra maintainers (@aistack)
extends_documentation_fragment:
  - aistack.infra.milvus
attributes:
  check_mode:
    description: Can run in check mode; logs in to find out, and returns in RV(actions) the calls it would make.
    support: full
  diff_mode:
    description: Returns whether the user exists and which password it had, before and after.
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
options:
  name:
    description: User name (a letter, then letters, digits and C(_), at most 32 characters).
    type: str
    required: true
  user_password:
    description:
      - The password O(name) must have (6 to 256 characters). Required with O(state=present).
    type: str
  previous_password:
    description:
      - A password O(name) may still have, for example C(Milvus), the root password of a new server.
        When O(user_password) does not log in and this one does, the password is changed from it.
    type: str
  state:
    description:
      - V(present) ensures the user with O(user_password); V(absent) removes it (never C(root)).
    type: str
    choices: [present, absent]
    default: present
notes:
  - On a server with authorization off every login is accepted, so a password cannot be checked or
    changed; the module then only creates a missing user, and warns.
  - O(db_name) is not used.
seealso:
  - module: aistack.infra.milvus_collection
  - name: Milvus authentication
    description: Users, passwords and authorization.
    link: https://milvus.io/docs/authenticate.md
"""

EXAMPLES = r"""
- name: Root's password, changed from Milvus' default on a new server
  aistack.infra.milvus_user:
    uri: http://127.0.0.1:19530
    name: root
    user_password: "{{ vault_milvus_root_password }}"
    previous_password: Milvus

- name: An application user, created by root
  aistack.infra.milvus_user:
    token: "root:{{ vault_milvus_root_password }}"
    name: rag_app
    user_password: "{{ vault_milvus_rag_app_password }}"

- name: Rotate the application's password
  aistack.infra.milvus_user:
    name: rag_app
    user_password: "{{ vault_milvus_rag_app_password_new }}"
    previous_password: "{{ vault_milvus_rag_app_password }}"

- name: Remove a user
  aistack.infra.milvus_user:
    token: "root:{{ vault_milvus_root_password }}"
    name: old_app
    state: absent
"""

RETURN = r"""
actions:
  description: The calls made, in words (never with a password). In check mode, the calls that would be made.
  returned: always
  type: list
  elements: str
  sample:
    - update_password(user='root')
user:
  description:
    - The user after the run. C(password) says which password it has - C(user_password), or C(unknown)
      where authorization is off.
  returned: always
  type: dict
  sample: {name: root, exists: true, password: user_password}
diff:
  description: The user before and after; C(password) is C(user_password), C(previous_password) or C(unknown).
  returned: when diff mode is on
  type: dict
  sample:
    before: {name: root, exists: true, password: previous_password}
    after: {name: root, exists: true, password: user_password}
"""


from ansible_collections.aistack.infra.plugins.module_utils._milvus import (
    MILVUS_CONNECTION_ARGS,
    run_manager_module,
)
from ansible_collections.aistack.infra.plugins.module_utils._milvus_user import MilvusUserManager


def argument_spec():
    spec = dict(MILVUS_CONNECTION_ARGS)
    spec.update(
        name=dict(type='str', required=True),
        user_password=dict(type='str', no_log=True),
        previous_password=dict(type='str', no_log=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    return spec


def main():
    run_manager_module(argument_spec(), MilvusUserManager, required_if=[('state', 'present', ('user_password',))])


if __name__ == '__main__':
    main()
