// kv_test_sweep: the CTest cleanup fixture. Kills every process and removes every /dev/shm object
// of any test namespace (kvt*) that a crashed test process could not clean up itself. Namespaces
// whose test process still runs are left alone: they belong to a concurrent test run.
#include <dirent.h>

#include <iostream>
#include <set>
#include <string>

#include "tests/testing/kvd_harness.h"

int main() {
  std::set<std::string> namespaces;
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name.rfind(kv::testing::kTestNamespacePrefix, 0) == 0) {
        std::string ns = name.substr(0, name.find('.'));
        if (kv::testing::IsLeftoverNamespace(ns)) namespaces.insert(ns);
      }
    }
    ::closedir(dir);
  }
  for (const std::string& ns : namespaces) kv::testing::SweepNamespace(ns);
  std::cout << "swept " << namespaces.size() << " leftover test namespaces\n";
  return 0;
}
