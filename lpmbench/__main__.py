from lpmbench.cli import main

main()
