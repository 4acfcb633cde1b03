"""Unit tests for module_utils/_milvus_user.py: how logins decide what to do with a user's password.

``FakeAuthServer`` answers logins the way a Milvus 2.3.5 with authorization does (measured: a
wrong password fails the client's construction with a gRPC UNAUTHENTICATED cause; a server that
is down fails it with UNAVAILABLE). The real server with authorization is exercised by the
molecule `milvus` scenario (the role's root password) and by hand (see docs/TESTING.md).
"""
import pytest

from ansible_collections.aistack.infra.plugins.module_utils._milvus_user import MilvusUserError, MilvusUserManager

SECRET = "N3w-root-password"


class FakeAuthServer(object):
    def __init__(self, authorization=True, up=True):
        self.passwords = {"root": "Milvus"}
        self.authorization = authorization
        self.up = up
        self.calls = []

    def connect(self, token=None, db_name="default", admin_token=None):
        """connect_fn: ``token`` overrides the connection's login (``admin_token``)."""
        token = token if token is not None else admin_token
        if not self.up:
            err = MilvusUserError("cannot connect to Milvus at http://milvus:19530 (db_name=default): unavailable")
            err.auth_failed = False
            raise err
        if self.authorization:
            user, _, password = (token or "").partition(":")
            if self.passwords.get(user) != password:
                err = MilvusUserError("cannot connect to Milvus at http://milvus:19530 (db_name=default): Fail "
                                      "connecting to server, illegal connection params or server unavailable")
                err.auth_failed = True
                raise err
        return FakeUserClient(self, token)


class FakeUserClient(object):
    def __init__(self, server, token):
        self.s, self.token = server, token

    def list_users(self, **kw):
        if self.s.authorization and not (self.token or "").startswith("root:"):
            raise RuntimeError("PrivilegeSelectOwnership: permission deny")
        return list(self.s.passwords)

    def update_password(self, user, old, new, **kw):
        self.s.calls.append(("update_password", user))
        assert self.s.passwords[user] == old
        self.s.passwords[user] = new

    def create_user(self, user, password, **kw):
        self.s.calls.append(("create_user", user))
        self.s.passwords[user] = password

    def drop_user(self, user, **kw):
        self.s.calls.append(("drop_user", user))
        del self.s.passwords[user]

    def close(self):
        pass


def run(server, check=False, admin_token=None, **params):
    params.setdefault("state", "present")
    manager = MilvusUserManager(params, check_mode=check,
                                connect_fn=lambda **kw: server.connect(admin_token=admin_token, **kw))
    return manager.run()


ROOT = dict(name="root", user_password=SECRET, previous_password="Milvus")


def test_root_password_changed_once_from_the_default():
    server = FakeAuthServer()
    planned = run(server, check=True, **ROOT)
    assert planned["changed"] is True and planned["actions"] == ["update_password(user='root')"]
    assert server.calls == [] and server.passwords["root"] == "Milvus"
    assert planned["diff"] == {"before": {"name": "root", "exists": True, "password": "previous_password"},
                               "after": {"name": "root", "exists": True, "password": "user_password"}}
    done = run(server, **ROOT)
    assert done["actions"] == planned["actions"] and server.passwords["root"] == SECRET
    again = run(server, **ROOT)
    assert again["changed"] is False and again["actions"] == [] and server.calls == [("update_password", "root")]
    assert again["diff"]["before"] == again["diff"]["after"]


def test_root_password_changed_elsewhere_fails_without_showing_it():
    server = FakeAuthServer()
    server.passwords["root"] = "someone-else-set-this"
    with pytest.raises(MilvusUserError) as err:
        run(server, **ROOT)
    msg = err.value.msg
    assert msg.startswith("cannot log in as root with user_password nor previous_password")
    assert "set user_password to its current password" in msg
    assert SECRET not in msg and "someone-else-set-this" not in msg
    assert server.calls == []


def test_a_server_that_is_down_is_not_a_wrong_password():
    with pytest.raises(MilvusUserError) as err:
        run(FakeAuthServer(up=False), **ROOT)
    assert err.value.msg.startswith("cannot connect to Milvus at http://milvus:19530")


def test_a_missing_user_is_created_by_the_administrator_login():
    server = FakeAuthServer()
    server.passwords["root"] = SECRET
    planned = run(server, check=True, admin_token="root:" + SECRET, name="rag_app", user_password="app-pass-1")
    assert planned["actions"] == ["create_user(user='rag_app')"] and server.calls == []
    assert planned["diff"]["before"] == {"name": "rag_app", "exists": False, "password": "unknown"}
    run(server, admin_token="root:" + SECRET, name="rag_app", user_password="app-pass-1")
    assert server.passwords["rag_app"] == "app-pass-1"
    # the user then rotates its own password without any administrator login
    done = run(server, name="rag_app", user_password="app-pass-2", previous_password="app-pass-1")
    assert done["actions"] == ["update_password(user='rag_app')"] and server.passwords["rag_app"] == "app-pass-2"


def test_a_missing_user_without_an_administrator_login_fails_naming_what_to_give():
    with pytest.raises(MilvusUserError) as err:
        run(FakeAuthServer(), name="rag_app", user_password="app-pass-1")
    assert "the connection has no login allowed to manage users" in err.value.msg


def test_absent_removes_the_user_once_and_never_root():
    server = FakeAuthServer()
    server.passwords.update(root=SECRET, old_app="old-pass-1")
    admin = "root:" + SECRET
    assert run(server, check=True, admin_token=admin, name="old_app", state="absent")["changed"] is True
    assert "old_app" in server.passwords
    assert run(server, admin_token=admin, name="old_app", state="absent")["actions"] == ["drop_user(user='old_app')"]
    assert run(server, admin_token=admin, name="old_app", state="absent")["changed"] is False
    with pytest.raises(MilvusUserError) as err:
        run(server, admin_token=admin, name="root", state="absent")
    assert err.value.msg == "name root: the root user cannot be removed"


def test_authorization_off_creates_nothing_that_exists_and_warns():
    server = FakeAuthServer(authorization=False)
    res = run(server, **ROOT)
    assert res["changed"] is False and server.calls == []
    assert "authorization is off" in res["warnings"][0]
    assert res["user"]["password"] == "unknown"


@pytest.mark.parametrize("params,message", [
    (dict(name="9lives", user_password="long-enough"), "name '9lives': a Milvus user name is a letter"),
    (dict(name="root", user_password="short"), "user_password must be 6 to 256 characters long"),
    (dict(name="root", user_password="long-enough", previous_password="x"), "previous_password must be 6 to 256"),
])
def test_bad_input_fails_before_any_login(params, message):
    def refuse(**kw):
        raise AssertionError("contacted the server")
    with pytest.raises(MilvusUserError) as err:
        MilvusUserManager(dict(params, state="present"), connect_fn=refuse).run()
    assert message in err.value.msg
    assert "short" not in err.value.msg.replace("user_password", "")
