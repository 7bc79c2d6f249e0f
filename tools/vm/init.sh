#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
#
# PID 1 of a tools/vm/run.sh guest. Stage 1 (in the initramfs) mounts the host
# root (9p, read-only) under a tmpfs overlay and switches root to it; stage 2
# (this script again, run by a copy of busybox in the new /run) runs
# /run/vmtest/cmd, prints its exit status as VMTEST-EXIT=<rc> and powers off.
# switch_root rather than chroot: the overlay must be the namespace's root, or
# paths that the kernel (and BPF programs) resolve start with /mnt/root.
bb=/run/vmtest/busybox

if [ "$1" = stage2 ]; then
	echo VMTEST-START
	# A clean environment: the kernel passes unknown command-line words to init.
	$bb env -i /bin/sh /run/vmtest/cmd </dev/null
	echo "VMTEST-EXIT=$?"
	$bb sync
	$bb poweroff -f
	echo o >/proc/sysrq-trigger
	exit 1
fi

/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# the loopback interface starts down: network tests use it
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
# Let the command's output through byte for byte (no \n -> \r\n).
stty -F /dev/console -onlcr 2>/dev/null

off() { poweroff -f; echo o >/proc/sysrq-trigger; sleep 5; }
fail() {
	echo "VMTEST-FAIL: $*"
	off
}

. /run/vmtest/conf

# Dependencies first; run.sh wrote the order (empty for a kernel with all
# built in).
for m in $(cat /modules/order 2>/dev/null); do
	insmod "/modules/$m.ko" || fail "insmod $m"
done

# A kernel without /sys/kernel/btf/vmlinux (one built from source): its BTF
# file where an administrator would put it, named by the release.
add_btf() { # add_btf ROOT
	[ -n "${VMTEST_BTF:-}" ] || return 0
	[ -f /btf/vmlinux.btf ] || fail "no /btf/vmlinux.btf in the initramfs"
	mkdir -p "$1$VMTEST_BTF" || fail "mkdir $VMTEST_BTF"
	cp /btf/vmlinux.btf "$1$VMTEST_BTF/$(uname -r).btf" || fail "copy the BTF to $VMTEST_BTF"
}

if [ "$VMTEST_MODE" = initramfs ]; then
	add_btf ""
	echo VMTEST-START
	(. /run/vmtest/cmd) </dev/null
	echo "VMTEST-EXIT=$?"
	off
fi

mkdir -p /mnt/host /mnt/rw /mnt/root
mount -t 9p -o "ro,$VMTEST_9P_OPTS" hostroot /mnt/host || fail "mount 9p"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw || fail "mount tmpfs"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /mnt/root ||
	fail "mount overlay"

# The kernel filesystems the command expects; they move along with the root.
r=/mnt/root
# Read-only trees straight from the share (run.sh says which and why).
for d in $VMTEST_DIRECT; do
	[ ! -d "/mnt/host$d" ] || mount -o bind "/mnt/host$d" "$r$d" || fail "bind $d"
done
mount -t proc proc $r/proc || fail "mount proc"
mount -t sysfs sysfs $r/sys || fail "mount sysfs"
mount -t devtmpfs devtmpfs $r/dev || fail "mount devtmpfs"
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $r/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $r/dev/shm
case ${VMTEST_CWD:-} in /tmp/?*) mkdir -p /mnt/cwd && mount -o bind "$r$VMTEST_CWD" /mnt/cwd ;; esac
mount -t tmpfs -o mode=1777 tmpfs $r/tmp
case ${VMTEST_CWD:-} in /tmp/?*) mkdir -p "$r$VMTEST_CWD" && mount -o bind /mnt/cwd "$r$VMTEST_CWD" ;; esac
mount -t tmpfs -o mode=0755 tmpfs $r/run || fail "mount /run"
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup 2>/dev/null || echo "vmtest: cgroup2 not mounted"
mount -t securityfs securityfs $r/sys/kernel/security 2>/dev/null
mount -t debugfs debugfs $r/sys/kernel/debug 2>/dev/null || echo "vmtest: debugfs not mounted"
mount -t tracefs tracefs $r/sys/kernel/tracing 2>/dev/null ||
	echo "vmtest: tracefs not mounted"
mount -t bpf bpf $r/sys/fs/bpf 2>/dev/null || echo "vmtest: bpffs not mounted"

add_btf $r

# Stage 2 cannot rely on the shared root's binaries: bring busybox along.
mkdir -p $r/run/vmtest
cp /bin/busybox /init /run/vmtest/cmd $r/run/vmtest/ || fail "copy to /run"
umount /proc /sys
exec switch_root $r $bb sh /run/vmtest/init stage2
