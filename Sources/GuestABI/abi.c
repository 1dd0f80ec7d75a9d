/* GuestABI is header-only; SwiftPM needs one source file to build a C target. */
#include "tandem_guest_abi.h"
