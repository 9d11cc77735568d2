/*
 * The vfio-user message structs, as C declares them, for vmm-core's BindingsGenerator and the layout test
 * (VfioUserLayoutTest). No distribution installs a vfio-user header, so this one is written here from the
 * specification (QEMU's docs/interop/vfio-user.rst; a copy is /work/shared/seeds/vfio-user-spec.rst) with the names
 * of libvfio-user's include/vfio-user.h (struct vfio_user_header, vfio_user_version, vfio_user_dma_map, ...).
 * Where libvfio-user has no struct for a message (REGION_WRITE_MULTI, the DMA_WRITE reply) the name follows the
 * spec's section and QEMU's hw/vfio-user/protocol.h (VFIOUserWROne, VFIO_USER_MULTI_DATA, VFIO_USER_MULTI_MAX).
 *
 * Everything is packed, as in libvfio-user: the messages are byte streams. The payloads that are linux/vfio.h
 * structs (vfio_device_info, vfio_region_info and its capabilities, vfio_irq_info, vfio_irq_set) are not repeated
 * here: vfio-pci's bindings of <linux/vfio.h> serve both.
 */
#ifndef PANAMAX_VFIO_USER_H
#define PANAMAX_VFIO_USER_H

#include <stdint.h>

/* Spec "Commands". */
enum vfio_user_command {
    VFIO_USER_VERSION                  = 1,
    VFIO_USER_DMA_MAP                  = 2,
    VFIO_USER_DMA_UNMAP                = 3,
    VFIO_USER_DEVICE_GET_INFO          = 4,
    VFIO_USER_DEVICE_GET_REGION_INFO   = 5,
    VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
    VFIO_USER_DEVICE_GET_IRQ_INFO      = 7,
    VFIO_USER_DEVICE_SET_IRQS          = 8,
    VFIO_USER_REGION_READ              = 9,
    VFIO_USER_REGION_WRITE             = 10,
    VFIO_USER_DMA_READ                 = 11,
    VFIO_USER_DMA_WRITE                = 12,
    VFIO_USER_DEVICE_RESET             = 13,
    /* 14 was VFIO_USER_DIRTY_PAGES, which the spec no longer lists. */
    VFIO_USER_REGION_WRITE_MULTI       = 15,
};

/*
 * Spec "Header". libvfio-user declares flags as bit-fields (type : 4, no_reply : 1, error : 1, resvd : 26) and
 * VFIO_USER_F_TYPE_COMMAND/REPLY for the type; the masks below are those bit-fields' bits, as QEMU's
 * protocol.h has them (VFIO_USER_TYPE, VFIO_USER_NO_REPLY, VFIO_USER_ERROR).
 */
#define VFIO_USER_F_TYPE_COMMAND 0
#define VFIO_USER_F_TYPE_REPLY   1
#define VFIO_USER_F_TYPE_MASK    0xf
#define VFIO_USER_F_NO_REPLY     (1 << 4)
#define VFIO_USER_F_ERROR        (1 << 5)

struct vfio_user_header {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t msg_size;
    uint32_t flags;
    uint32_t error_no;
} __attribute__((packed));

/* Spec "VFIO_USER_VERSION": the JSON version data, NUL-terminated, follows. */
struct vfio_user_version {
    uint16_t major;
    uint16_t minor;
    uint8_t data[];
} __attribute__((packed));

/* Spec "VFIO_USER_DMA_MAP": vfio_iommu_type1_dma_map with vaddr replaced by the offset in the passed fd. */
#define VFIO_USER_F_DMA_REGION_READ  (1 << 0)
#define VFIO_USER_F_DMA_REGION_WRITE (1 << 1)

struct vfio_user_dma_map {
    uint32_t argsz;
    uint32_t flags;
    uint64_t offset;
    uint64_t addr;
    uint64_t size;
} __attribute__((packed));

/* Spec "VFIO_USER_DMA_UNMAP": request and reply. */
struct vfio_user_dma_unmap {
    uint32_t argsz;
    uint32_t flags;
    uint64_t addr;
    uint64_t size;
} __attribute__((packed));

/* Spec "VFIO_USER_REGION_READ", "VFIO_USER_REGION_WRITE": request and reply; data with the read reply and write request. */
struct vfio_user_region_access {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    uint8_t data[];
} __attribute__((packed));

/* Spec "VFIO_USER_DMA_READ", "VFIO_USER_DMA_WRITE": data with the read reply and the write request. */
struct vfio_user_dma_region_access {
    uint64_t addr;
    uint64_t count;
    uint8_t data[];
} __attribute__((packed));

/* Spec "VFIO_USER_DMA_WRITE", reply: its table gives count 4 bytes, though the request's is 8. */
struct vfio_user_dma_write_reply {
    uint64_t addr;
    uint32_t count;
} __attribute__((packed));

/* Spec "VFIO_USER_DEVICE_GET_REGION_IO_FDS". */
#define VFIO_USER_IO_FD_TYPE_IOEVENTFD  0
#define VFIO_USER_IO_FD_TYPE_IOREGIONFD 1

struct vfio_user_region_io_fds_request {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
} __attribute__((packed));

/* Spec "Sub-Region IO FD info format (ioeventfd)". */
struct vfio_user_sub_region_ioeventfd {
    uint64_t offset;
    uint64_t size;
    uint32_t fd_index;
    uint32_t type;
    uint32_t flags;
    uint32_t padding;
    uint64_t datamatch;
} __attribute__((packed));

/* Spec "Sub-Region IO FD info format (ioregionfd)": the same, user_data where ioeventfd has datamatch. */
struct vfio_user_sub_region_ioregionfd {
    uint64_t offset;
    uint64_t size;
    uint32_t fd_index;
    uint32_t type;
    uint32_t flags;
    uint32_t padding;
    uint64_t user_data;
} __attribute__((packed));

struct vfio_user_region_io_fds_reply {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
    struct vfio_user_sub_region_ioeventfd sub_regions[];
} __attribute__((packed));

/* Spec "VFIO_USER_REGION_WRITE_MULTI"; QEMU's VFIOUserWROne and VFIOUserWRMulti. */
#define VFIO_USER_MULTI_DATA 8
#define VFIO_USER_MULTI_MAX  200

struct vfio_user_write_one {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    uint8_t data[VFIO_USER_MULTI_DATA];
} __attribute__((packed));

struct vfio_user_region_write_multi {
    uint64_t wr_cnt;
    struct vfio_user_write_one wrs[];
} __attribute__((packed));

/* The reply to REGION_WRITE_MULTI: the writes completed. */
struct vfio_user_region_write_multi_reply {
    uint64_t wr_cnt;
} __attribute__((packed));

/*
 * Migration v2 over vfio-user (libvfio-user's include/vfio-user.h): DEVICE_FEATURE carries <linux/vfio.h>'s
 * struct vfio_device_feature (argsz, flags, data[]); MIG_DATA_READ/WRITE carry the device state that the kernel
 * moves through its data fd. The feature payloads are <linux/vfio.h>'s vfio_device_feature_migration and
 * vfio_device_feature_mig_state.
 */
#include <linux/vfio.h>

#define VFIO_USER_DEVICE_FEATURE 16
#define VFIO_USER_MIG_DATA_READ 17
#define VFIO_USER_MIG_DATA_WRITE 18

struct vfio_user_device_feature {
    uint32_t argsz;
    uint32_t flags;
    uint8_t data[];
} __attribute__((packed));

struct vfio_user_mig_data {
    uint32_t argsz;
    uint32_t size;
    uint8_t data[];
} __attribute__((packed));

/*
 * DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_START/STOP/REPORT of <linux/vfio.h>) over vfio-user, as
 * libvfio-user lays it out: the kernel's structs pass the ranges and the bitmap by pointer, these carry them
 * inline after the struct.
 */
struct vfio_user_device_feature_dma_logging_range {
    uint64_t iova;
    uint64_t length;
} __attribute__((packed));

struct vfio_user_device_feature_dma_logging_control {
    uint64_t page_size;
    uint32_t num_ranges;
    uint32_t reserved;
    struct vfio_user_device_feature_dma_logging_range ranges[];
} __attribute__((packed));

struct vfio_user_device_feature_dma_logging_report {
    uint64_t iova;
    uint64_t length;
    uint64_t page_size;
    uint8_t bitmap[];
} __attribute__((packed));

#endif
