/* libvirt's C API (pkg-config libvirt; Debian: libvirt-dev), for Tandem's libvirt backend. */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
