from avatargen.cli import main

main()
