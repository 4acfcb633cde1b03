# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Milvus user management for aistack.infra (private: not a public API).

``MilvusUserManager`` does the work of ``milvus_user``. Milvus never shows a password, so the
only way to know whether a user has the requested one is to log in with it: a login that works
means nothing to do; otherwise a login with ``previous_password`` (Milvus' default ``Milvus``
for root on a new server) lets the user change its own password, and a user that does not
exist is created through the connection's own login (an administrator).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import uuid

from ansible_collections.aistack.infra.plugins.module_utils._milvus import (
    MilvusIndexError,
    _call,
    _reason,
    connect,
)

USER_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]{0,31}$')
USER_RULE = 'a letter, then letters, digits and _, at most 32 characters'
# Milvus' password rules (common.security.minPasswordLength / maxPasswordLength).
MIN_PASSWORD = 6
MAX_PASSWORD = 256


class MilvusUserError(MilvusIndexError):
    """A problem the user can act on; main() turns it into fail_json(msg=...)."""


class MilvusUserManager(object):
    """Ensure (or remove) one Milvus user and its password."""

    def __init__(self, params, check_mode=False, connect_fn=None):
        self.p = params
        self.check_mode = check_mode
        self._connect_fn = connect_fn or (lambda **overrides: connect(self.p, MilvusUserError, **overrides))
        self.name = params.get('name')
        self.state = params.get('state') or 'present'
        self.actions = []
        self.warnings = []

    @property
    def _timeout(self):
        return float(self.p.get('timeout') or 30.0)

    # ---- offline validation
    def validate(self):
        if not isinstance(self.name, str) or not USER_RE.match(self.name):
            raise MilvusUserError('name %r: a Milvus user name is %s' % (self.name, USER_RULE))
        if self.state == 'absent':
            if self.name == 'root':
                raise MilvusUserError('name root: the root user cannot be removed')
            return
        for key in ('user_password', 'previous_password'):
            value = self.p.get(key)
            if value is None:
                continue
            if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
                # The value is never shown; only its length matters here.
                raise MilvusUserError('%s must be %d to %d characters long (Milvus refuses other lengths), got %d'
                                      % (key, MIN_PASSWORD, MAX_PASSWORD, len(value)))

    # ---- logins
    def _login(self, password):
        """(client, None) when ``name``/``password`` logs in, (None, error) when the server refuses it.
        Any other failure (server down, TLS...) is raised: it says nothing about the password."""
        try:
            return self._connect_fn(token='%s:%s' % (self.name, password), db_name='default'), None
        except MilvusIndexError as exc:
            if getattr(exc, 'auth_failed', False):
                return None, exc
            raise

    @staticmethod
    def _close(client):
        if client is not None and hasattr(client, 'close'):
            try:
                client.close()
            except Exception:  # best effort
                pass

    def _admin(self, refused=None):
        """The connection's own login, used to list, create and drop users."""
        try:
            return self._connect_fn(db_name='default')
        except MilvusIndexError as exc:
            if not getattr(exc, 'auth_failed', False):
                raise
            if refused is not None:
                raise MilvusUserError(
                    'cannot log in as %s with user_password%s, and the connection has no login allowed to manage '
                    'users (token, or user and password) to find out whether %s exists: set user_password to its '
                    'current password, give that one as previous_password, or give an administrator login'
                    % (self.name, ' nor previous_password' if self.p.get('previous_password') else '', self.name))
            raise MilvusUserError(
                'removing user %s needs a login allowed to manage users (token, or user and password, of the '
                'connection): %s' % (self.name, exc.msg))

    def _users(self, admin):
        try:
            return list(admin.list_users(timeout=self._timeout))
        except Exception as exc:
            raise MilvusUserError('list_users failed (does the connection login have the right to manage users?): %s'
                                  % _reason(exc))

    # ---- planning and running
    def run(self):
        self.validate()
        if self.state == 'absent':
            return self._absent()
        return self._present()

    def _present(self):
        new = self.p.get('user_password')
        before = dict(name=self.name, exists=True, password='unknown')
        client, refused = self._login(new)
        if client is not None:
            self._close(client)
            probe, _refused = self._login('not-' + uuid.uuid4().hex)
            if probe is None:  # authorization on: the password is right
                before['password'] = 'user_password'
                return self._result(False, before)
            # Authorization is off: every login works, so the password cannot be checked.
            self._close(probe)
            self.warnings.append('authorization is off on this server: every login is accepted, so the password '
                                 'of %s cannot be checked or changed' % self.name)
            return self._ensure_exists(new, before)
        previous = self.p.get('previous_password')
        if previous:
            old_client, _refused = self._login(previous)
            if old_client is not None:
                before['password'] = 'previous_password'
                try:
                    self.actions.append(_call('update_password', user=self.name))
                    if not self.check_mode:
                        try:
                            old_client.update_password(self.name, previous, new, timeout=self._timeout)
                        except Exception as exc:
                            self.actions.pop()
                            raise MilvusUserError('update_password(user=%r) failed: %s' % (self.name, _reason(exc)))
                finally:
                    self._close(old_client)
                return self._result(True, before)
        return self._ensure_exists(new, before, refused)

    def _ensure_exists(self, new, before, refused=None):
        admin = self._admin(refused)
        try:
            if self.name in self._users(admin):
                if refused is None:  # authorization off: the user is there, nothing to check
                    return self._result(False, before)
                raise MilvusUserError(
                    'user %s exists, but neither user_password%s logs in (%s). Milvus shows no password and only '
                    'lets a user change its own: set user_password to the current password, or give the current '
                    'one as previous_password' % (self.name, ' nor previous_password' if self.p.get('previous_password')
                                                  else '', refused.msg))
            before = dict(name=self.name, exists=False, password='unknown')
            self.actions.append(_call('create_user', user=self.name))
            if not self.check_mode:
                try:
                    admin.create_user(self.name, new, timeout=self._timeout)
                except Exception as exc:
                    self.actions.pop()
                    raise MilvusUserError('create_user(user=%r) failed: %s' % (self.name, _reason(exc)))
            return self._result(True, before)
        finally:
            self._close(admin)

    def _absent(self):
        admin = self._admin()
        try:
            exists = self.name in self._users(admin)
            if exists:
                self.actions.append(_call('drop_user', user=self.name))
                if not self.check_mode:
                    try:
                        admin.drop_user(self.name, timeout=self._timeout)
                    except Exception as exc:
                        self.actions.pop()
                        raise MilvusUserError('drop_user(user=%r) failed: %s' % (self.name, _reason(exc)))
        finally:
            self._close(admin)
        after = dict(name=self.name, exists=False)
        return dict(changed=exists, actions=self.actions, user=after,
                    diff=dict(before=dict(name=self.name, exists=exists), after=after))

    def _result(self, changed, before):
        after = dict(name=self.name, exists=True, password='user_password')
        if self.warnings and not changed and before.get('password') == 'unknown':
            after['password'] = 'unknown'
        return dict(changed=changed, actions=self.actions, user=after, warnings=list(self.warnings),
                    diff=dict(before=before, after=after))
