/* Private to device/amd/: the KFD ioctl interface. The system's <linux/kfd_ioctl.h> (Debian bookworm: KFD 1.11),
 * plus RUNTIME_ENABLE, which KFD 1.14 added (layout from the kernel's uapi header). */
#ifndef KN_AMD_KFD_UAPI_H
#define KN_AMD_KFD_UAPI_H

#include <linux/kfd_ioctl.h>

struct kn_kfd_runtime_enable_args {
  __u64 r_debug;
  __u32 mode_mask, capabilities_mask;
};
#define KN_KFD_IOC_RUNTIME_ENABLE _IOWR('K', 0x25, struct kn_kfd_runtime_enable_args)

#endif
