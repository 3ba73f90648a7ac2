#!/bin/sh
# The boot test's agent inside the VM (installed as kaiten-vmtest.service).
# It obeys one command a line from the host on the virtio serial port
# kaiten.ctl, prints the command's output prefixed with "| ", then
# "DONE <command> <exit code>".
# shellcheck disable=SC2012 # ls output is only shown to the host
port=/dev/virtio-ports/kaiten.ctl
i=0
while [ ! -e "$port" ] && [ $i -lt 120 ]; do # udev names the port early in boot
	sleep 1
	i=$((i + 1))
done
exec 3<>"$port"

state() {
	echo "active=$(systemctl is-active kaiten.service)"
	echo "enabled=$(systemctl is-enabled kaiten.service 2>/dev/null)"
	echo "nrestarts=$(systemctl show kaiten.service -p NRestarts --value)"
	echo "groups=$(id -nG kaiten 2>/dev/null)"
	echo "bootcfg=$(ls /boot/firmware/kaiten* 2>/dev/null | tr '\n' ' ')"
	echo "config=$(stat -c '%a %U:%G' /etc/kaiten/kaiten.yaml 2>/dev/null)"
	echo "store_id=$(sed -n 's/^store_id: *//p' /etc/kaiten/kaiten.yaml 2>/dev/null)"
	echo "data=$(stat -c '%a %U:%G' /var/lib/kaiten 2>/dev/null)"
	echo "datafiles=$(ls /var/lib/kaiten 2>/dev/null | tr '\n' ' ')"
	pid=$(systemctl show kaiten.service -p MainPID --value)
	echo "mainuser=$(ps -o user= -p "$pid" 2>/dev/null)"
}

echo "HELLO $(uname -m)" >&3
while IFS=' ' read -r cmd arg <&3; do
	case "$cmd" in
	install) out=$(dpkg -i "/boot/firmware/$arg" 2>&1) ;;
	remove) out=$(dpkg -r kaiten 2>&1) ;;
	purge) out=$(dpkg -P kaiten 2>&1) ;;
	state) out=$(state) ;;
	journal) out=$(journalctl -u kaiten.service --no-pager -n 60 2>&1) ;;
	poweroff)
		echo "DONE poweroff 0" >&3
		systemctl poweroff
		exit 0
		;;
	*) out="unknown command: $cmd"; false ;;
	esac
	rc=$?
	printf '%s\n' "$out" | sed 's/^/| /' >&3
	echo "DONE $cmd $rc" >&3
done
