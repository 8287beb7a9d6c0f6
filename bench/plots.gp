# gnuplot script of bench/plots: draws docs/plots/{idle,fanout,load}.png from the
# .dat files bench/sweep writes. Variables: dir (the plots directory), which (the
# sweeps to draw, e.g. "idle fanout load").
if (!exists("dir")) dir = "docs/plots"
if (!exists("which")) which = "idle fanout load"
have(f) = system("test -s '".f."' && echo 1 || echo 0") eq "1"
sa = dir."/%s-standalone.dat"
rd = dir."/%s-redis.dat"
# `reset` between plots clears the styles too: STYLE sets them again.
STYLE = 'set grid; set key box opaque; '.\
  'set style line 1 lc rgb "#1f77b4" lw 2 pt 7 ps 1.1; '.\
  'set style line 2 lc rgb "#d62728" lw 2 pt 5 ps 1.1; '.\
  'set style line 3 lc rgb "#2ca02c" lw 2 pt 9 ps 1.1; '.\
  'set style line 5 lc rgb "#ff7f0e" lw 2 pt 13 ps 1.1'
set terminal pngcairo size 900,560 font "DejaVu Sans,11" noenhanced
eval STYLE

if (strstrt(which, "idle") > 0 && have(sprintf(sa, "idle")) && have(sprintf(rd, "idle"))) {
  set output dir."/idle.png"
  set title "Memory per idle WebSocket connection (bench/sweep idle)"
  set xlabel "idle connections"
  set ylabel "bytes per connection (VmRSS growth / N)"
  set key top right
  set xrange [0:20000]
  set yrange [0:*]
  set format x "%.0f"
  plot sprintf(sa, "idle") using 1:2 with linespoints ls 1 title "standalone: dsock process", \
       sprintf(rd, "idle") using 1:2 with linespoints ls 2 title "Redis mode: worker", \
       sprintf(rd, "idle") using 1:4 with linespoints ls 3 title "Redis mode: redis-server"
  unset output
  reset
  eval STYLE
}

if (strstrt(which, "fanout") > 0 && have(sprintf(sa, "fanout")) && have(sprintf(rd, "fanout"))) {
  set terminal pngcairo size 1100,500 font "DejaVu Sans,11" noenhanced
  set output dir."/fanout.png"
  set multiplot layout 1,2 title "One /send to a user with K connections, one send at a time (bench/sweep fanout)"
  set logscale x
  set xrange [5:20000]
  set xlabel "K (connections of the user)"
  set key bottom right box opaque
  set ylabel "deliveries/s"
  set yrange [0:*]
  set title "Deliveries per second"
  plot sprintf(sa, "fanout") using 1:2 with linespoints ls 1 title "standalone", \
       sprintf(rd, "fanout") using 1:2 with linespoints ls 2 title "Redis, 1 worker"
  set logscale y
  set yrange [*:*]
  set key top left box opaque
  set ylabel "ms (log scale)"
  set title "Latency to the last of the K connections, p99"
  plot sprintf(sa, "fanout") using 1:4 with linespoints ls 1 title "standalone", \
       sprintf(rd, "fanout") using 1:4 with linespoints ls 2 title "Redis, 1 worker"
  unset multiplot
  unset output
  reset
  eval STYLE
}

if (strstrt(which, "load") > 0 && have(sprintf(sa, "load")) && have(sprintf(rd, "load"))) {
  set terminal pngcairo size 1100,500 font "DejaVu Sans,11" noenhanced
  set output dir."/load.png"
  set multiplot layout 1,2 title "Latency /send -> delivery at an offered load, open loop (bench/sweep load)"
  set xlabel "offered load, % of the closed-loop maximum"
  set ylabel "ms (log scale)"
  set logscale y
  set xrange [0:125]
  set key top left box opaque
  set title "standalone"
  plot sprintf(sa, "load") using 1:4 with linespoints ls 1 title "p50", \
       sprintf(sa, "load") using 1:5 with linespoints ls 5 title "p99", \
       sprintf(sa, "load") using 1:6 with linespoints ls 2 title "p99.9"
  set title "Redis mode (API + worker + redis-server)"
  plot sprintf(rd, "load") using 1:4 with linespoints ls 1 title "p50", \
       sprintf(rd, "load") using 1:5 with linespoints ls 5 title "p99", \
       sprintf(rd, "load") using 1:6 with linespoints ls 2 title "p99.9"
  unset multiplot
  unset output
}
