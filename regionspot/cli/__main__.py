from regionspot.cli import main

main()
