from ctqc.cli import main

main()
