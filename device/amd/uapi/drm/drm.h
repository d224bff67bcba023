/* Debian's <linux/kfd_ioctl.h> includes <drm/drm.h>, which no Debian package installs at that path (libdrm-dev puts
 * it under /usr/include/libdrm). The KFD header needs only the kernel's fixed-width types and ioctl macros from it,
 * so this stand-in supplies exactly those; device/amd is built with this folder on its include path. */
#ifndef KN_DRM_SHIM_H
#define KN_DRM_SHIM_H
#include <linux/ioctl.h>
#include <linux/types.h>
#endif
