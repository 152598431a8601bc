# Deliberately failing check, added only by `npm run test:xen -- --inject-failure`, to see the
# runner report a failure, show this output and exit non-zero.
echo "this check fails on purpose (--inject-failure)"
exit 1
