"""
Tests for L{wcs_twisted.rest.credentials}: no published password on a listener other hosts
can reach.
"""

import os
import stat

from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.config import ConfigError, Settings
from wcs_twisted.rest.credentials import PASSWORD_FILE, rest_credentials


class RestCredentialsTests(SynchronousTestCase):
    """
    Which credentials a server starts with.
    """

    def setUp(self):
        self.state = os.path.join(os.path.abspath(self.mktemp()), "state")
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_loopback_keeps_admin(self):
        """
        A loopback-only server without rest_password keeps admin/admin and writes nothing.
        """
        for address in ("127.0.0.1", "::1"):
            settings = Settings(bind_address=address, state_dir=self.state)
            self.assertEqual(rest_credentials(settings), ("admin", "admin"))
        self.assertFalse(os.path.exists(self.state))

    def test_configured_password(self):
        """
        A configured password is used as it is, on any address.
        """
        settings = Settings(rest_username="ops", rest_password="long-secret",
                            state_dir=self.state)
        self.assertEqual(rest_credentials(settings), ("ops", "long-secret"))

    def test_generated_on_public_address(self):
        """
        Without rest_password on 0.0.0.0 a random password is generated into state_dir (0700)
        /rest-password (0600); the log names the file, never the password; a restart reads it.
        """
        settings = Settings(bind_address="0.0.0.0", state_dir=self.state)
        user, password = rest_credentials(settings)
        path = os.path.join(self.state, PASSWORD_FILE)
        self.assertEqual(user, "admin")
        self.assertGreaterEqual(len(password), 20)
        self.assertNotEqual(password, "admin")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.state).st_mode) & 0o077, 0)
        with open(path) as handle:
            self.assertEqual(handle.read(), password + "\n")
        warnings = [event for event in self.events if event["log_level"] is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["path"], path)
        self.assertFalse(any(password in repr(event) for event in self.events))
        self.assertEqual(rest_credentials(settings), ("admin", password))

    def test_each_install_its_own(self):
        """
        Two state directories get two different passwords.
        """
        first = rest_credentials(Settings(state_dir=self.state))
        second = rest_credentials(Settings(state_dir=self.state + "2"))
        self.assertNotEqual(first, second)

    def test_file_open_to_others_refused(self):
        """
        A password file others may read stops start-up with one line saying how to fix it.
        """
        settings = Settings(state_dir=self.state)
        rest_credentials(settings)
        path = os.path.join(self.state, PASSWORD_FILE)
        os.chmod(path, 0o644)
        error = self.assertRaises(ConfigError, rest_credentials, settings)
        self.assertIn(f"chmod 600 {path}", str(error))

    def test_published_or_empty_file_refused(self):
        """
        A password file holding admin, or nothing, is refused.
        """
        os.makedirs(self.state)
        path = os.path.join(self.state, PASSWORD_FILE)
        for content in ("admin\n", "\n"):
            with open(path, "w") as handle:
                handle.write(content)
            os.chmod(path, 0o600)
            self.assertRaises(ConfigError, rest_credentials, Settings(state_dir=self.state))

    def test_unwritable_state_dir(self):
        """
        A state_dir that cannot be created is one clear ConfigError naming it.
        """
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w"):
            pass
        error = self.assertRaises(ConfigError, rest_credentials,
                                  Settings(state_dir=os.path.join(blocker, "state")))
        self.assertIn("state_dir=", str(error))

    def test_auth_disabled(self):
        """
        disable_rest_auth gives no credentials; on a public address it is warned about.
        """
        self.assertIsNone(rest_credentials(Settings(bind_address="127.0.0.1",
                                                    disable_rest_auth=True)))
        self.assertEqual(self.events, [])
        self.assertIsNone(rest_credentials(Settings(disable_rest_auth=True)))
        self.assertEqual([event["log_level"] for event in self.events], [LogLevel.warn])
