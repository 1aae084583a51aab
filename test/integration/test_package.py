"""The Debian package (issue 17): scripts/test.sh builds
postgresql-<major>-revetl with scripts/build-deb.sh (debian/, pg_buildext)
and makes a clean private copy of PostgreSQL without revetl
(scripts/private-pg.sh); this test checks the package's contents and
dependencies, unpacks it into that copy as dpkg would install it, and
creates the extension and runs a sync from what the package installed.

REVETL_DEB: the .deb; REVETL_DEB_ROOT: the private copy's root (its
PostgreSQL has no revetl until the package is unpacked there).
"""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, pg_bindir  # noqa: E402

DEB = os.environ.get("REVETL_DEB", "")
ROOT = os.environ.get("REVETL_DEB_ROOT", "")


def major():
    out = subprocess.run([os.path.join(pg_bindir(), "pg_config"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return re.match(r"PostgreSQL (\d+)", out).group(1)


@unittest.skipUnless(DEB and ROOT, "REVETL_DEB and REVETL_DEB_ROOT are set by scripts/test.sh (on 15)")
class PackageTest(unittest.TestCase):
    def test_1_contents_and_dependencies(self):
        m = major()
        self.assertRegex(os.path.basename(DEB), rf"^postgresql-{m}-revetl_0\.2\.0_[a-z0-9]+\.deb$")
        files = subprocess.run(["dpkg-deb", "-c", DEB], capture_output=True, text=True, check=True).stdout
        paths = {line.split()[-1].lstrip(".") for line in files.splitlines()}
        for path in (f"/usr/lib/postgresql/{m}/lib/revetl.so",
                     f"/usr/share/postgresql/{m}/extension/revetl.control",
                     f"/usr/share/postgresql/{m}/extension/revetl--0.2.0.sql",
                     f"/usr/share/postgresql/{m}/extension/revetl--0.1.0--0.2.0.sql"):
            self.assertIn(path, paths)
        self.assertFalse([p for p in paths if p.endswith((".o", ".cpp", ".hpp"))], "build leftovers in the package")
        depends = subprocess.run(["dpkg-deb", "-f", DEB, "Depends"], capture_output=True, text=True,
                                 check=True).stdout
        for dep in ("ca-certificates", "libcurl4", f"postgresql-{m}", "libphonenumber"):
            self.assertIn(dep, depends)
        self.assertEqual(subprocess.run(["dpkg-deb", "-f", DEB, "Package"], capture_output=True, text=True,
                                        check=True).stdout.strip(), f"postgresql-{m}-revetl")

    def test_2_installed_package_creates_the_extension_and_syncs(self):
        m = major()
        bindir = os.path.join(ROOT, "usr", "lib", "postgresql", m, "bin")
        control = os.path.join(ROOT, "usr", "share", "postgresql", m, "extension", "revetl.control")
        self.assertFalse(os.path.exists(control), "the private copy has revetl before the package is unpacked")
        subprocess.run(["dpkg-deb", "-x", DEB, ROOT], check=True)
        self.assertTrue(os.path.exists(control))
        cluster = Cluster(name="revetl-package", bindir=bindir).start()
        mock = MockWebhook()
        try:
            cluster.sql("create extension revetl")
            self.assertEqual(cluster.sql("select extversion from pg_extension where extname = 'revetl'"), "0.2.0")
            cluster.wait_for_worker()
            cluster.sql(f"""
                create table p (id int primary key, v text); insert into p values (1, 'a'), (2, 'b');
                create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/pkg');
                select revetl.create_sync('packaged', 'public.p', 'hooks', array['id']);
            """)
            run_id = int(cluster.sql("select revetl.run_sync('packaged')"))
            self.assertEqual(cluster.wait_for_run(run_id), "succeeded")
            self.assertEqual(len(mock.records()), 2)
            # The server is the private copy's, so the library it loaded is the package's.
            pkglibdir = subprocess.run([os.path.join(bindir, "pg_config"), "--pkglibdir"], capture_output=True,
                                       text=True, check=True).stdout.strip()
            self.assertTrue(os.path.realpath(pkglibdir).startswith(os.path.realpath(ROOT)), pkglibdir)
        finally:
            mock.stop()
            cluster.destroy()


if __name__ == "__main__":
    unittest.main()
