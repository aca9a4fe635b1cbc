// A listening TCP socket for `kvctl serve`, from an address as an operator writes it.
#pragma once

#include <string>

#include "kv/status.h"

namespace kv::ctl {

// Binds and listens on `address`: "HOST:PORT" or "[IPV6]:PORT" (HOST a numeric address or a
// name such as localhost; PORT 0 picks a free port). On success *fd is the listening socket
// (close-on-exec, SO_REUSEADDR; the caller closes it) and *bound the address actually bound,
// numeric ("127.0.0.1:41234", "[::1]:41234"). Errors: kInvalidArgument for an address that does
// not parse or resolve, kFailed with the system's reason when no socket can bind.
Status ListenTcp(const std::string& address, int backlog, int* fd, std::string* bound);

}  // namespace kv::ctl
