# gen_errcodes.awk: turn PostgreSQL's errcodes.txt into txv8's condition-name table (src/txv8_errcodes.h).
BEGIN { print "/* txv8_errcodes.h: generated from errcodes.txt by gen_errcodes.awk; do not edit. */" }
length($1) == 5 && $1 ~ /^[0-9A-Z]+$/ && NF >= 4 && $2 == "E" { printf "\t{\"%s\", \"%s\"},\n", $4, $1 }
